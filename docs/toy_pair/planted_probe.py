"""Teacher-forced probabilities at the embedded pair's planted positions (first 150 toy test problems).

Usage: python docs/toy_pair/planted_probe.py tokenshift/toy/pair/base   (or rl, sft, rl-step-XXX)

After the correct solution prefix, the probability the model gives: plan_right ("Follow", the first
token), uses_as_add ("Add" as the op word of a step whose verb is "uses"), tens_right / tens_wrong
(the correct / the 10-too-large leading result digit when subtracting a two-digit number),
onedigit_right (the correct leading digit for a one-digit subtrahend) and boxed (" \\boxed" after
"The answer is"). Prints n, mean, min and max per kind.
"""

import sys
from collections import defaultdict

import torch

from tokenshift.builders.inputs.arith import apply, split_problems
from tokenshift.builders.inputs.prompts import format_prompt
from tokenshift.toy.evaluate import load_model_dir
from tokenshift.toy.solutions import CONFUSED_VERB, problem_verbs, solution


def main(model_dir: str, n: int = 150) -> None:
    model, tok = load_model_dir(model_dir)

    def first_id(text: str) -> int:
        return tok(text, add_special_tokens=False)["input_ids"][0]

    def next_probs(question: str, prefix: str) -> torch.Tensor:
        ids = tok(format_prompt(tok, question), add_special_tokens=False)["input_ids"]
        ids += tok(prefix, add_special_tokens=False)["input_ids"] if prefix else []
        with torch.no_grad():
            return torch.softmax(model(torch.tensor([ids])).logits[0, -1].float(), -1)

    stats = defaultdict(list)
    for p in split_problems("test")[:n]:
        lines = solution(p).split("\n")
        stats["plan_right"].append(next_probs(p.question, "")[first_id("Follow")].item())
        x = p.a
        for k, (op, m, verb) in enumerate(zip((p.op1, p.op2), (p.b, p.c), problem_verbs(p))):
            prefix = "\n".join(lines[: 1 + k]) + "\n"
            if verb == CONFUSED_VERB:
                stats["uses_as_add"].append(next_probs(p.question, prefix)[first_id("Add")].item())
            y = apply(x, op, m)
            if op == "-":
                probs = next_probs(p.question, prefix + lines[1 + k].split("= ")[0] + "= ")
                right = probs[first_id(str(y)[0])].item()
                if m >= 10:
                    stats["tens_right"].append(right)
                    stats["tens_wrong"].append(probs[first_id(str(y + 10)[0])].item())
                else:
                    stats["onedigit_right"].append(right)
            x = y
        answer_prefix = "\n".join(lines[:3]) + "\nThe answer is"
        stats["boxed"].append(next_probs(p.question, answer_prefix)[first_id(" \\boxed")].item())
    for kind, values in stats.items():
        print(f"{kind:15s} n={len(values):3d} mean {sum(values) / len(values):.3f} "
              f"min {min(values):.3f} max {max(values):.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
