"""Does STCA read far back? Spark-generated logs -> request_samples -> STCA and mean pooling
trained with Beta length sampling -> finish AUC on the held-out last day at 512 and 10,000 events.

The planted signal is the generator's creator affinity alone (synthetic/logs.py, topic
effect off): each user has a hidden taste per author that shows only in how they finished that
author's *old* videos (events of the last `recent_days` warm-up days carry none) and in the
targets. Reading it takes finding the target's author among thousands of events and looking at
the feedback there: target attention can, a mean of event tokens cannot, and a heavy user's
newest 512 events hold little of it. `python -m benchmarks.quality --interest-logit 0
--affinity-logit 3 --users 150 --items 400 --days 3 --l-max 10000 --steps 400` runs the same
experiment (plus the oracles) as a benchmark."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.quality import build, oracles, train_config
from schemas.constants import DEFAULT_L_MAX
from trainer.train import train

# `make test` runs pytest beside the Airflow suite: at two torch threads next to its spark-submits
# this took 622 s, against 244 s on a quiet machine (402 s at one thread). So it runs last, when
# the Airflow suite has usually finished, and trains with one thread only if the machine is busy.
pytestmark = [
    pytest.mark.spark,
    pytest.mark.run_last,
    pytest.mark.timeout(1_200),
    pytest.mark.usefixtures("spark"),
]

ThreadsForLoad = Callable[[], contextlib.AbstractContextManager[None]]  # conftest.torch_threads_for_load
L_MAX, SHORT = DEFAULT_L_MAX, 512
STEPS = 400


def finish_auc(
    table: str, out: Path, model: str, dates: list[str], threads: ThreadsForLoad
) -> dict[int, float]:
    with threads():
        run = train(
            train_config(
                table, str(out / model), model, dates, steps=STEPS, l_max=L_MAX, lengths=(SHORT, L_MAX)
            )
        )
    return {int(n): m["finish"]["auc"] for n, m in run["eval"].items()}


def test_stca_reads_the_long_range_signal_that_mean_pooling_cannot(
    tmp_path: Path, torch_threads_for_load: ThreadsForLoad
) -> None:
    # 150 users, 400 items (20 authors), 3 request days (2 train, 1 evaluates), up to 10k events.
    table, dates = build(str(tmp_path / "warehouse"), users=150, items=400, topics=6, days=3, l_max=L_MAX,
                         affinity_logit=3.0, interest_logit=0.0)
    # The data holds the signal, further back than 512 events, and nothing a mean reads.
    oracle = oracles(table, dates[-1], [SHORT, L_MAX], num_topics=6)
    assert oracle["author_finish_rate"][str(L_MAX)] > oracle["author_finish_rate"][str(SHORT)] + 0.01 > 0.75
    assert abs(oracle["topic_share"][str(L_MAX)] - 0.5) < 0.03

    stca = finish_auc(table, tmp_path, "stca", dates, torch_threads_for_load)
    mean_pool = finish_auc(table, tmp_path, "mean_pool", dates, torch_threads_for_load)
    assert stca[L_MAX] > mean_pool[L_MAX] + 0.03, (stca, mean_pool)
    assert stca[L_MAX] > stca[SHORT], stca
