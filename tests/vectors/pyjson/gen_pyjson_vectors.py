#!/usr/bin/env python3
"""Known answers for src/core/pyjson.rs, produced by CPython's own json module.

Each case holds a JSON input text and what `json.dumps(json.loads(text), sort_keys=True,
separators=(",", ":"))` and `json.dumps(..., sort_keys=True)` print for it: the two forms
the original service hashed (ClawShield v1 action_hash, legacy receipt). Deterministic
(seeded); run with python3 >= 3.8:  python3 gen_pyjson_vectors.py > cases.json
"""
import json
import random

rng = random.Random(6962)
ALPHABET = ["a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "ß", "中",
            "\u2028", "\u202e", "😀", "\U0001f9ea", "\ufeff"]


def rand_str():
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 8)))


def rand_float():
    kind = rng.randint(0, 5)
    if kind == 0:
        return rng.uniform(-1e6, 1e6)
    if kind == 1:
        return float(rng.randint(-10**6, 10**6))
    if kind == 2:
        return rng.choice([1e16, 1e15, 1e-4, 1e-5, 1e-7, 0.1, 0.5, 123.456, 1e300, 5e-324, -0.0, 2.5e-8])
    if kind == 3:
        return rng.random() * 10 ** rng.randint(-20, 20)
    if kind == 4:
        return -rng.random() * 10 ** rng.randint(-20, 20)
    return float(rng.randint(0, 2**53)) * 4


def rand_value(depth=0):
    kind = rng.randint(0, 7 if depth < 3 else 4)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.randint(-2**63, 2**63 - 1) if rng.random() < 0.3 else rng.randint(-1000, 1000)
    if kind == 3:
        return rand_float()
    if kind == 4:
        return rand_str()
    if kind in (5, 6):
        return {rand_str(): rand_value(depth + 1) for _ in range(rng.randint(0, 4))}
    return [rand_value(depth + 1) for _ in range(rng.randint(0, 4))]


cases = []
for _ in range(400):
    value = {"action": "echo", "payload": rand_value()}
    text = json.dumps(value, ensure_ascii=False)
    parsed = json.loads(text)
    cases.append({
        "input": text,
        "compact": json.dumps(parsed, sort_keys=True, separators=(",", ":")),
        "default": json.dumps(parsed, sort_keys=True),
    })
print(json.dumps(cases, indent=1))
