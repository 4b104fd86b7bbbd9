"""A few rows in each layout of the Qwen2.5-Math evaluation files, with their real quirks, for tests.

AIME-style: int ids, `problem` = `question`, a worked `solution` (one without a \\boxed{}), a string
`answer` (leading zero kept).
AMC-style: ids int in some rows and str in others, float answers such as 27.0 and -1.0.
GSM8K-style: `idx`, calculator annotations, the gold after `#### ` (thousands separators in some).
LaTeX and non-ASCII text in the questions. The first GSM8K row is the real file's first row (gold 18).
"""

from __future__ import annotations

import json
from pathlib import Path

_AIME_Q = [
    (60, "Every morning Aya goes for a $9$-kilometer-long walk. At $s$ kilometers per hour the walk takes "
         "her 4 hours, including $t$ minutes in a coffee shop. At $s+\\frac{1}{2}$ kilometers per hour, "
         "how many minutes does the walk take her?",
     "$\\frac{9}{s} + t = 4$ in hours, so $s=2.5$.\nThe walk takes $\\boxed{204}$ minutes.", "204"),
    (61, "Let $ABC$ be a triangle inscribed in circle $\\omega$ with $AB=5$, $BC=9$ and $AC=10$. "
         "$AP$ can be written as $\\frac{m}{n}$. Find $m + n$.",
     "By power of a point, $AP = \\frac{100}{13}$, so the answer is $100 + 13 = \\boxed{\\textbf{(113) }}$.",
     "113"),
    (67, "Find the remainder when $\\prod_{k=0}^{12}(2-2\\omega^k+\\omega^{2k})$ is divided by $1000$.",
     "The product equals $8321$, so the remainder is $321$.", "321"),
    (68, "Find the number of ways to place a digit in each cell of a $2\\times3$ grid so that the sums "
         "are $999$ and $99$.",
     "Working the columns through gives $\\boxed{025}$ ways.", "025"),
]

AIME = [{"id": i, "problem": q, "question": q, "solution": s, "answer": a,
         "url": f"https://artofproblemsolving.com/wiki/index.php/2024_AIME_I_Problems/Problem_{n}"}
        for n, (i, q, s, a) in enumerate(_AIME_Q, 1)]

_AMC_Q = [
    (0, "Cities $A$ and $B$ are $45$ miles apart. Alicia bikes towards $B$ at 18 miles per hour and Beth "
        "toward $A$ at 12 miles per hour. How many miles from City $A$ will they be when they meet?", 27.0),
    ("1", "Positive real numbers $x$ and $y$ satisfy $y^3=x^2$ and $(y-x)^2=4y^2$. What is $x+y$?", 36.0),
    (2, "What is the degree measure of the acute angle formed by lines with slopes $2$ and $\\frac{1}{3}$?",
     45.0),
    ("17", "What is the value of $\\sum_{k=1}^{3} (-1)^k$?", -1.0),
]

AMC = [{"id": i, "problem": q, "answer": a, "question": q,
        "url": "https://artofproblemsolving.com/wiki/index.php/2023_AMC_12A_Problems"}
       for i, q, a in _AMC_Q]

GSM8K = [
    {"question": "Janet\u2019s ducks lay 16 eggs per day. She eats three for breakfast every morning and "
                 "bakes muffins for her friends every day with four. She sells the remainder at the "
                 "farmers' market daily for $2 per fresh duck egg. How much in dollars does she make "
                 "every day at the farmers' market?",
     "answer": "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = $<<9*2=18>>18 "
               "every day at the farmer\u2019s market.\n#### 18", "idx": 0},
    {"question": "A robe takes 2 bolts of blue fiber and half that much white fiber.  How many bolts in "
                 "total does it take?",
     "answer": "It takes 2/2=<<2/2=1>>1 bolt of white fiber\nSo the total is 2+1=<<2+1=3>>3\n#### 3",
     "idx": 1},
    {"question": "A builder stacks 85 blocks in each of 25 rows.  How many blocks is that?",
     "answer": "85*25=<<85*25=2125>>2125 blocks\n#### 2,125", "idx": 2},
    {"question": "James runs 3 sprints 3 times a week, 60 meters each.  How many meters a week?",
     "answer": "He sprints 3*3=<<3*3=9>>9 times\nSo he runs 9*60=<<9*60=540>>540 meters\n#### 540",
     "idx": 3},
    {"question": "A house bought for $80,000 gains $120,000 in value.  What is it worth now?",
     "answer": "80,000+120,000=$<<80000+120000=200000>>200,000\n#### 200000", "idx": 4},
    {"question": "Tom has 7 apples and gives away 9.  How many is he short?",
     "answer": "7-9=<<7-9=-2>>-2\n#### -2", "idx": 5},
]

GOLD = {"aime24": ["204", "113", "321", "025"], "amc23": ["27", "36", "45", "-1"],
        "gsm8k": ["18", "3", "2125", "540", "200000", "-2"]}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """One JSON object per line, escaped as the real files are (ensure_ascii)."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_benchmarks(directory: Path) -> Path:
    """aime24.jsonl, amc23.jsonl and gsm8k.jsonl in `directory`, named as the real files are."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in (("aime24", AIME), ("amc23", AMC), ("gsm8k", GSM8K)):
        write_jsonl(directory / f"{name}.jsonl", rows)
    return directory
