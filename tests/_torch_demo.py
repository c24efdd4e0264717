"""The demo policy with a torch network in place of its estimator, and the demo stream's rows
to train and test it on: what the compression and static-int8 tests share."""

from __future__ import annotations

import re
from datetime import timedelta

from reoptd.data import demo
from reoptd.models import build_model
from reoptd.models.torch import TorchMLP
from reoptd.policy import Policy, parse_policy
from reoptd.settings import DEMO_POLICY

SOURCE = demo.DemoSource(label_delay=timedelta(0))
TRAIN = SOURCE.read(demo.START - timedelta(hours=2), demo.START + timedelta(hours=1))
TEST_START, TEST_END = demo.START + timedelta(hours=1), demo.START + timedelta(hours=2)
TEST = SOURCE.read(TEST_START, TEST_END)


def torch_policy(train: str, pipeline: str | None = None, compress: str | None = None) -> Policy:
    """The demo policy with ``train`` (one YAML line) as its train block, and optionally another
    pipeline line and a compress block."""
    text = re.sub(r"^train:\n(?:  .*\n)+", train, DEMO_POLICY.read_text(), flags=re.M)
    if pipeline is not None:
        text = text.replace("pipeline: [retrain, validate]", pipeline)
    if compress is not None:
        text += f"compress: {compress}\n"
    return parse_policy(text, "torch.yaml")


def fit_teacher(policy: Policy) -> TorchMLP:
    """The policy's torch network trained on ``TRAIN``."""
    model = build_model(policy)
    assert isinstance(model, TorchMLP)
    return model.fit(TRAIN, TRAIN["churned"])
