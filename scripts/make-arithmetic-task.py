#!/usr/bin/env python3
"""Writes a small GSM-style arithmetic task as JSONL (id, question, answer), seeded and verified:
each problem is a short expression over small integers whose value Python computes exactly.

  python3 scripts/make-arithmetic-task.py [N] [SEED] > arith.jsonl
"""
import json
import random
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
templates = [
    ("A shop has {a} apples and sells {b} of them. How many apples are left?", lambda a, b, c: a - b),
    ("Tom reads {a} pages a day for {b} days. How many pages does he read?", lambda a, b, c: a * b),
    ("What is {a} + {b} * {c}?", lambda a, b, c: a + b * c),
    ("A box holds {b} pencils. How many pencils are in {c} boxes plus {a} loose pencils?", lambda a, b, c: b * c + a),
    ("What is ({a} + {b}) * {c}?", lambda a, b, c: (a + b) * c),
]
for i in range(n):
    text, f = templates[i % len(templates)]
    b = rng.randint(2, 12)
    a = rng.randint(b + 1, 60)
    c = rng.randint(2, 9)
    answer = f(a, b, c)
    assert isinstance(answer, int) and answer >= 0
    print(json.dumps({"id": f"arith-{i:03d}", "question": text.format(a=a, b=b, c=c), "answer": answer}))
