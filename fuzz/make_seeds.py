#!/usr/bin/env python3
"""Writes the small checked-in seed corpora (fuzz/corpus/<target>/).

Deterministic: random bytes from fixed seeds, so the files only change when
this script does. The attention seeds cover every value of the first byte's
(implementation, property) choice; the layout seeds each mode of the first
choice; the abi seeds a spread of malformed calls. A fuzzing run's corpus is
never checked in: ci/fuzz keeps that in build/fuzz-corpus.

    fuzz/make_seeds.py        # rewrites fuzz/corpus/
"""
import os
import random
import shutil

here = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(bytes(data))


def main():
    shutil.rmtree(os.path.join(here, "corpus"), ignore_errors=True)
    rng = random.Random(20261128)
    # attention: byte 0 = impl + 2 * property hint (9 hints: 8 properties, none).
    for first in range(18):
        n = rng.choice([24, 40, 64, 96])
        write("attention", "seed-%02d" % first, [first] + [rng.randrange(256) for _ in range(n)])
    for i in range(4):  # all-zero and all-0xff tails: the plainest cases
        write("attention", "plain-%d" % i, [i * 2] + [0 if i < 2 else 255] * 48)
    # layout: the first choice is consumed from the end of the input.
    for i in range(20):
        n = rng.choice([16, 32, 64, 128])
        write("layout", "seed-%02d" % i, [rng.randrange(256) for _ in range(n)] + [i % 4])
    for i, text in enumerate([b"(2,3,4):(12,4,1)+5", b"(4,1,3):(3,7,1)", b"():()",
                              b"(9223372036854775807):(1)"]):
        write("layout", "text-%d" % i, list(text) + [3])
    # abi: random calls of several sizes.
    for i in range(24):
        n = rng.choice([32, 96, 200, 400])
        write("abi", "seed-%02d" % i, [rng.randrange(256) for _ in range(n)])


if __name__ == "__main__":
    main()
