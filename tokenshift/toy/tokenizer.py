"""A byte-level BPE tokenizer for the toy pair: encodes any text, digits one by one, Qwen-style chat."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from tokenshift.builders.inputs.arith import split_problems
from tokenshift.builders.inputs.prompts import DEFAULT_INSTRUCTION
from tokenshift.toy.solutions import ForkMix, sample_solution

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)
MAX_LENGTH = 4096  # tokens; benchmark problems (not just toy ones) must fit
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Generic text so common English and LaTeX pieces get merges too; any other byte still encodes.
GENERIC_TEXT = (
    "Find the number of positive integers less than 1000 that satisfy the equation.",
    "Let $x$ and $y$ be real numbers such that $x + y = 10$ and $xy = 21$. What is the value of $x^2 + y^2$?",
    "Compute $\\frac{1}{2} + \\frac{1}{3}$ and express the answer as a common fraction.",
    "The probability that a point chosen at random lies inside the circle is $\\frac{m}{n}$, "
    "where $m$ and $n$ are relatively prime positive integers. Find $m + n$.",
    "A triangle has sides of length $3$, $4$ and $5$. What is the area of the triangle?",
    "Suppose $f(x) = \\sqrt{x^2 + 1}$ for all real $x$. Evaluate $f(\\sqrt{3})$.",
    "She sells the remainder at the market for $2 per item. How much money does she make every day?",
    "The sum $\\sum_{k=1}^{n} k = \\frac{n(n+1)}{2}$, so the total is \\[ 1 + 2 + \\dots + 100 = 5050. \\]",
    "In the $xy$-plane, the lines $y = 2x$ and $y = \\tan\\theta \\cdot x$ meet at the origin.",
    "How many ways are there to choose $3$ of the $10$ people? The answer is $\\binom{10}{3}$.",
    "Each morning she walks to the coffee shop, and the walk takes her 4 hours in total.",
    "If the price increased by 150%, what was the profit, in dollars, after the repairs?",
)


@dataclass(frozen=True)
class TokenizerConfig:
    """Vocabulary size and how much toy text the BPE merges are learned from."""

    vocab_size: int = 512
    n_train_problems: int = 4000
    min_frequency: int = 2


def _corpus(config: TokenizerConfig) -> Iterator[str]:
    rng, mix = random.Random(0), ForkMix(0.5, 0.5, 0.5, 0.5)  # every branch, fixed: merges never follow the mix
    for p in split_problems("train")[: config.n_train_problems]:
        yield f"user\n{p.question}\n{DEFAULT_INSTRUCTION}\nassistant\n"
        yield sample_solution(p, mix, rng)
    for _ in range(20):
        yield from GENERIC_TEXT


def train_tokenizer(config: TokenizerConfig = TokenizerConfig()) -> PreTrainedTokenizerFast:
    """Train the BPE on toy + generic text and wrap it as a HF tokenizer with the chat template."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=config.vocab_size, min_frequency=config.min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(config), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=IM_END, pad_token=ENDOFTEXT, bos_token=None, unk_token=None,
        additional_special_tokens=[IM_START], chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False, model_max_length=MAX_LENGTH)
