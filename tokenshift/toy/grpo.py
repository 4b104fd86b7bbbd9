"""RLVR: GRPO from the base model with TRL's GRPOTrainer and a math-verify correctness reward."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

from tokenshift.builders.inputs.arith import toy_problems
from tokenshift.builders.inputs.prompts import format_prompt
from tokenshift.runtime.progress import interactive
from tokenshift.toy.evaluate import reward
from tokenshift.toy.model import save_model_dir
from tokenshift.training.callback import TokenShiftCallback
from tokenshift.training.trl_extra import require_trl


@dataclass(frozen=True)
class GRPOSettings:
    """GRPO hyperparameters (8 prompts x 8 samples, T=1, top_k=0, dapo loss; lr 2e-4: 1e-4 was slow, 5e-4 collapsed)."""

    steps: int = 120
    prompts_per_step: int = 8
    num_generations: int = 8
    learning_rate: float = 2e-4
    beta: float = 0.0
    loss_type: str = "dapo"
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_completion_length: int = 96
    n_train_prompts: int = 4000
    checkpoint_fractions: tuple[float, ...] = (0.25, 0.5, 0.75)
    logging_steps: int = 5
    shift_every: int = 5  # TokenShiftCallback: score the step's completions every this many steps


def correctness_reward(completions: list[str], answer: list[str], **_) -> list[float]:
    """Reward 1 when the last \\boxed{} of a completion verifies against the gold answer, else 0."""
    return [reward(gold, text) for text, gold in zip(completions, answer)]


def checkpoint_steps(settings: GRPOSettings) -> list[int]:
    """Optimizer steps after which an intermediate RL model is saved (distinct, before the last)."""
    steps = {max(1, round(f * settings.steps)) for f in settings.checkpoint_fractions}
    return sorted(s for s in steps if s < settings.steps)


def checkpoint_name(step: int) -> str:
    return f"rl-step-{step:03d}"


class SaveAtSteps(TrainerCallback):
    """Writes a self-contained model directory (no optimizer state) at the chosen global steps."""

    def __init__(self, steps: list[int], out: Path, tokenizer: PreTrainedTokenizerBase):
        self.steps, self.out, self.tokenizer = set(steps), out, tokenizer
        self.saved: list[Path] = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step in self.steps and model is not None:
            self.saved.append(save_model_dir(model, self.tokenizer, self.out / checkpoint_name(state.global_step)))
        return control


def train_grpo(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, settings: GRPOSettings,
               seed: int, out: Path) -> tuple[PreTrainedModel, list[dict], list[Path]]:
    """Run GRPO in place on `model`; intermediates go to out/rl-step-XXX. Returns model, log, checkpoints."""
    trl = require_trl()  # heavy import, only when training

    problems = toy_problems("train", settings.n_train_prompts)
    dataset = Dataset.from_list([{"prompt": format_prompt(tokenizer, p["question"]), "answer": p["answer"]}
                                 for p in problems])
    saver = SaveAtSteps(checkpoint_steps(settings), out, tokenizer)
    with tempfile.TemporaryDirectory(prefix="toy-grpo-") as scratch:  # trainer files never shipped
        config = trl.GRPOConfig(
            output_dir=scratch, max_steps=settings.steps,
            per_device_train_batch_size=settings.prompts_per_step * settings.num_generations,
            num_generations=settings.num_generations, steps_per_generation=1, num_iterations=1,
            gradient_accumulation_steps=1, learning_rate=settings.learning_rate,
            lr_scheduler_type="constant", warmup_steps=0, beta=settings.beta,
            loss_type=settings.loss_type, temperature=settings.temperature, top_p=settings.top_p,
            top_k=settings.top_k, max_completion_length=settings.max_completion_length,
            logging_steps=settings.logging_steps, save_strategy="no", report_to="none",
            use_cpu=True, bf16=False, fp16=False, seed=seed, data_seed=seed,
            dataloader_num_workers=0, disable_tqdm=not interactive())  # a log gets plain lines
        trainer = trl.GRPOTrainer(model=model, reward_funcs=correctness_reward, args=config,
                                  train_dataset=dataset, processing_class=tokenizer, callbacks=[saver])
        TokenShiftCallback(every=settings.shift_every).attach(trainer)  # token shift vs the SFT base, logged
        trainer.train()
        log = [entry for entry in trainer.state.log_history if "reward" in entry or "train_runtime" in entry]
    return trainer.model, log, saver.saved
