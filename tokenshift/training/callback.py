"""TokenShiftCallback: every N steps, the step's completions scored under the starting model and the current
policy at full vocabulary; the token-shift statistics go into the trainer's own logs.

Completions are read from the step's training forward passes (a forward pre-hook on the model): tokens
with a label other than -100 are the completion, the attended tokens before them the prompt — how TRL's
GRPOTrainer (and other trainers that pass `labels`) call the model.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import asdict

import torch
from transformers import TrainerCallback

from tokenshift.training.divergence import score_batch
from tokenshift.training.stats import ShiftStatsConfig, shift_stats

IGNORE_INDEX = -100


def answers_from_forward(input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                         labels: torch.Tensor) -> list[tuple[list[int], list[int]]]:
    """(prompt, completion) token lists of each row of a labelled forward batch; rows without labels dropped."""
    answers = []
    for row in range(input_ids.shape[0]):
        ids, target = input_ids[row], labels[row] != IGNORE_INDEX
        attended = attention_mask[row].bool() if attention_mask is not None else torch.ones_like(target)
        if not bool(target.any()):
            continue
        first = int(target.nonzero()[0])
        before = torch.arange(len(ids)) < first
        answers.append((ids[before & attended].tolist(), ids[target & attended].tolist()))
    return answers


class TokenShiftCallback(TrainerCallback):
    """Logs how far the policy has moved from the starting model, token by token, every `every` steps.

    base: the starting model (a model, a local path or Hub id), or None for a frozen copy of the model
    when training begins. Keys are prefixed with `prefix` (e.g. tokenshift/share_js_ge_0.1); the same
    values are kept in `history` as (step, stats) pairs. Call `attach(trainer)` so reporting callbacks
    (TensorBoard, W&B, trackio) see the values; passing it in `callbacks=[...]` fills the log history only.
    """

    def __init__(self, base=None, every: int = 10, stats: ShiftStatsConfig = ShiftStatsConfig(),
                 prefix: str = "tokenshift/", max_answers: int | None = None):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.base, self.every, self.stats, self.prefix, self.max_answers = base, every, stats, prefix, max_answers
        self.history: list[tuple[int, dict[str, float]]] = []
        self.last_answers: list[tuple[list[int], list[int]]] = []
        self._captured: list[tuple[list[int], list[int]]] = []
        self._capturing = False
        self._pending: dict[str, float] = {}
        self._hook = None
        self._warned = False

    def attach(self, trainer) -> "TokenShiftCallback":
        """Register as the trainer's first callback, so every logger sees the injected values; returns self."""
        callbacks = trainer.callback_handler.callbacks
        if self in callbacks:
            callbacks.remove(self)
        callbacks.insert(0, self)
        return self

    def _load_base(self, model):
        if self.base is None:
            base = copy.deepcopy(model)
        elif isinstance(self.base, torch.nn.Module):
            base = self.base
        else:
            from transformers import AutoModelForCausalLM

            base = AutoModelForCausalLM.from_pretrained(self.base, dtype=model.dtype)
        return base.to(next(model.parameters()).device).eval().requires_grad_(False)

    def _capture(self, module, args, kwargs):
        labels = kwargs.get("labels")
        if not (self._capturing and module.training and torch.is_grad_enabled()) or labels is None:
            return
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if input_ids is not None:
            self._captured += answers_from_forward(input_ids.detach().cpu(),
                                                   None if kwargs.get("attention_mask") is None
                                                   else kwargs["attention_mask"].detach().cpu(),
                                                   labels.detach().cpu())

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.base = self._load_base(model)
        self._hook = model.register_forward_pre_hook(self._capture, with_kwargs=True)
        return control

    def on_step_begin(self, args, state, control, **kwargs):
        self._captured = []
        self._capturing = (state.global_step + 1) % self.every == 0
        return control

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if not self._capturing:
            return control
        self._capturing, answers, self._captured = False, self._captured, []
        if self.max_answers is not None:
            answers = answers[:self.max_answers]
        if not answers:
            if not self._warned:
                warnings.warn(f"TokenShiftCallback: no labelled training forward pass at step {state.global_step}; "
                              f"nothing to score", stacklevel=2)
                self._warned = True
            return control
        vocab = len(processing_class) if processing_class is not None else model.config.vocab_size
        scored = score_batch(self.base, model, answers, vocab)
        values = shift_stats(scored, self.stats)
        self.last_answers = answers
        self.history.append((state.global_step, values))
        self._pending = {f"{self.prefix}{k}": v for k, v in values.items()}
        control.should_log = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._pending and logs is not None and not any(k.startswith("eval_") for k in logs):
            logs.update(self._pending)
            if state.log_history and state.log_history[-1].get("step") == state.global_step:
                state.log_history[-1].update(self._pending)
            self._pending = {}
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        return control

    def config(self) -> dict:
        """The settings, for a manifest."""
        return {"every": self.every, "prefix": self.prefix, **asdict(self.stats)}
