"""Turn a benchmark question into the exact prompt text the models see."""

from __future__ import annotations

DEFAULT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def format_prompt(tokenizer, question: str, instruction: str = DEFAULT_INSTRUCTION,
                  use_chat_template: bool = True) -> str:
    """Question + instruction through the tokenizer's chat template, or a plain template without one."""
    content = f"{question.strip()}\n{instruction}" if instruction else question.strip()
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True)
    return f"Question: {content}\nAnswer: "
