"""A few rows in each jsonl layout of the Qwen2.5-Math evaluation suite (data/NAME/test.jsonl), quirks
kept: the flags that load each, and the golds a build should then grade against.

Each LAYOUTS entry: rows, the build flags that read the file right, the golds expected after them,
and (for the layouts that need a flag to be read right) the flag a careless build would miss.
"""

from __future__ import annotations

from benchmark_fixtures import GSM8K

MATH500 = [
    {"problem": "Convert the point $(0,3)$ in rectangular coordinates to polar coordinates.",
     "solution": "We have $r = 3$ and $\\theta = \\frac{\\pi}{2}$, so the answer is "
                 "$\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$",
     "answer": "\\left( 3, \\frac{\\pi}{2} \\right)", "subject": "Precalculus", "level": 2,
     "unique_id": "test/precalculus/807.json"},
    {"problem": "Define $p = \\sum_{k=1}^\\infty \\frac{1}{k^2}$ and $q = \\sum_{k=1}^\\infty \\frac{1}{k^3}$. "
                "Write $\\sum_{j=1}^\\infty \\sum_{k=1}^\\infty \\frac{1}{(j + k)^3}$ in terms of $p$ and $q.$",
     "solution": "Counting pairs gives $\\boxed{p - q}.$", "answer": "p - q", "subject": "Intermediate Algebra",
     "level": 5, "unique_id": "test/intermediate_algebra/1994.json"},
    {"problem": "If $f(x) = \\frac{3x-2}{x-2}$, what is $f(-2) + f(-1) + f(0)$?",
     "solution": "The sum is $\\boxed{\\frac{14}{3}}.$", "answer": "\\frac{14}{3}", "subject": "Algebra",
     "level": 3, "unique_id": "test/algebra/2584.json"},
]
SVAMP = [
    {"ID": "chal-777", "Body": "There are 87 oranges and 290 bananas in Philip's collection. If the bananas "
                               "are organized into 2 groups and oranges are organized into 93 groups",
     "Question": "How big is each group of bananas?", "Equation": "( 290.0 / 2.0 )", "Answer": 145.0,
     "Type": "Common-Division"},
    {"ID": "chal-778", "Body": "Edward spent $ 6 to buy 2 books each book costing him the same amount of money. "
                               "Now he has $ 12.", "Question": "How much did each book cost?",
     "Equation": "( 6.0 / 2.0 )", "Answer": 3.0, "Type": "Common-Division"},
]
MINERVA = [  # physics and astronomy: golds in the worked solution's box, many in e-notation
    {"problem": "Preamble: A star has luminosity $L$. What is its luminosity in erg/s?",
     "solution": "Summing the flux over the sphere gives $L=\\boxed{4.5e33}$ erg/s.", "type": "Introduction to "
     "Astronomy (8.282J Spring 2006)", "idx": 0},
    {"problem": "What is the wavelength of the photon, in meters?",
     "solution": "Then $\\lambda = hc/E = \\boxed{1.3e-7}$ m.", "type": "Introduction to Astronomy", "idx": 1},
    {"problem": "What fraction of the mass remains?", "solution": "So $\\boxed{0.2}$ of it remains.",
     "type": "Relativity (8.033 Fall 2006)", "idx": 2},
]
OLYMPIADBENCH = [
    {"id": 2231, "subfield": "Algebra", "context": None, "question": "Find $x$ with $2x = 1$.",
     "solution": ["Divide by 2."], "final_answer": ["$\\frac{1}{2}$"], "is_multiple_answer": False,
     "unit": None, "answer_type": "Numerical", "error": None},
    {"id": 2232, "subfield": "Algebra", "context": None,
     "question": "Find the ordered pair $(a, b)$ with $a + b = 8$ and $a - b = -2$.",
     "solution": ["Add the equations."], "final_answer": ["3", "5"], "is_multiple_answer": True,
     "unit": None, "answer_type": "Tuple", "error": None},
]
AQUA = [
    {"question": "A car finishes a journey in 20 hours at 42 km/h. How fast must it go to finish in 14 hours?",
     "options": ["A)50", "B)60", "C)70", "D)80", "E)90"], "rationale": "42 * 20 / 14 = 60", "correct": "B"},
    {"question": "What is 6 * 7?", "options": ["A)40", "B)41", "C)42", "D)43", "E)44"],
     "rationale": "6 * 7 = 42", "correct": "C"},
]
ASDIV = [  # the gold carries its unit in parentheses
    {"body": "Seven red apples and two green apples are in the basket.",
     "question": "How many apples are in the basket?", "solution_type": "Addition", "answer": "9 (apples)",
     "formula": "7+2=9"},
    {"body": "Ellen has 6 more balls than Marin. Marin has 9 balls.", "question": "How many balls does Ellen have?",
     "solution_type": "Addition", "answer": "15 (balls)", "formula": "6+9=15"},
    {"body": "A cake is cut into 8 pieces and 2 are eaten.", "question": "What fraction is left?",
     "solution_type": "Fraction", "answer": "3/4 (cake)", "formula": "6/8=3/4"},
]
MMLU_STEM = [  # the gold is the option's index, counted from 0
    {"question": "Find the degree for the given field extension Q(sqrt(2)) over Q.", "subject": "abstract_algebra",
     "choices": ["0", "4", "2", "6"], "answer": 2},
    {"question": "Which of these is a prime number?", "subject": "elementary_mathematics",
     "choices": ["7", "8", "9", "10"], "answer": 0},
]
COLLEGE_MATH = [
    {"data_source": "Calculus", "question_number": "4.1.7", "question": "Evaluate $\\int_0^1 2x \\, dx$.",
     "answer": "$1$", "license": "Creative Commons", "data_topic": "college_math.calculus"},
    {"data_source": "Linear Algebra", "question_number": "2.3.1",
     "question": "What is the determinant of $\\begin{pmatrix} 2 & 0 \\\\ 0 & 3 \\end{pmatrix}$?",
     "answer": "$6$", "license": "Creative Commons", "data_topic": "college_math.linear_algebra"},
]
GAOKAO = [  # gaokao2024-style: proof and choice rows have an empty `answer`
    {"question": "已知函数 $f(x)=x^2$，求 $f(3)$。", "answer": "9", "choice_answer": ""},
    {"question": "证明：对任意正整数 $n$，$n^2+n$ 是偶数。", "answer": "", "choice_answer": ""},
    {"question": "设 $a=2$，则 $a^3=$？ (A) 6 (B) 8 (C) 9 (D) 12", "answer": "", "choice_answer": "B"},
    {"question": "求 $\\sqrt{16}$。", "answer": "4", "choice_answer": ""},
]
SAT_MATH = [  # options as a dict (gaokao_math_qa has the same shape)
    {"id": "sat-1", "question": "If $3x + 5 = 17$, what is $x$?", "options": {"A": "3", "B": "4", "C": "5", "D": "6"},
     "Answer": "B"},
    {"id": "sat-2", "question": "What is $2^5$?", "options": {"A": "10", "B": "16", "C": "25", "D": "32"},
     "Answer": "D"},
]
CMATH = [
    {"id": "cmath-1", "question": "小明有5个苹果，又买了3个，现在有几个？", "answer": "8", "grade": 1,
     "reasoning_step": 1},
    {"id": "cmath-2", "question": "一袋米重2.5千克，4袋重多少千克？", "answer": "10", "grade": 3, "reasoning_step": 1},
]

# name -> (rows, flags that read it right, golds after them, the one flag a careless build misses or None)
LAYOUTS = {
    "math500": (MATH500, [], ["\\left( 3, \\frac{\\pi}{2} \\right)", "p - q", "\\frac{14}{3}"], None),
    "svamp": (SVAMP, ["--id-field", "ID", "--answer-field", "Answer", "--question-template", "{Body}. {Question}"],
              ["145", "3"], None),
    "minerva_math": (MINERVA, ["--answer-field", "solution", "--answer-from", "boxed", "--gold-transform",
                               "sci-notation"], ["4.5 \\times 10^{33}", "1.3 \\times 10^{-7}", "0.2"],
                     ["--gold-transform", "sci-notation"]),
    "olympiadbench": (OLYMPIADBENCH, [], ["$\\frac{1}{2}$", '["3", "5"]'], None),
    "aqua": (AQUA, ["--answer-field", "correct", "--question-template", "{question}\n{options:choices}"],
             ["B", "C"], None),
    "gsm8k": (GSM8K, [], ["18", "3", "2125", "540", "200000", "-2"], None),
    "asdiv": (ASDIV, ["--question-template", "{body} {question}", "--gold-transform", "strip-unit"],
              ["9", "15", "3/4"], ["--gold-transform", "strip-unit"]),
    "mmlu_stem": (MMLU_STEM, ["--question-template", "{question}\n{choices:choices}", "--gold-transform",
                              "option-index0"], ["C", "A"], ["--gold-transform", "option-index0"]),
    "college_math": (COLLEGE_MATH, [], ["$1$", "$6$"], None),
    "gaokao2024_mix": (GAOKAO, ["--skip-invalid"], ["9", "4"], ["--skip-invalid"]),
    "sat_math": (SAT_MATH, ["--answer-field", "Answer", "--question-template", "{question}\n{options:choices}"],
                 ["B", "D"], None),
    "cmath": (CMATH, [], ["8", "10"], None),
}
