"""loss.png names every curve: each fold, the final model, and the checkpoint kept."""

from advisor.backends.artifacts import loss_figure
from advisor.backends.models import Evaluation, RunMetrics, StepLoss, TrainResult, TrainShape


def result(run: str, best_step=None) -> TrainResult:
    return TrainResult(
        run=run, train_examples=8, steps=2, epochs=1.0, runtime_s=1.0,
        shape=TrainShape(batch_size=2, gradient_accumulation_steps=1, gradient_checkpointing=False),
        losses=[StepLoss(step=1, epoch=0.5, loss=2.0), StepLoss(step=2, epoch=1.0, loss=1.5)],
        evaluations=[Evaluation(step=2, metrics={"loss": 1.7})], best_step=best_step,
    )


def legend(metrics: RunMetrics) -> list[str]:
    return [text.get_text() for text in loss_figure(metrics).axes[0].get_legend().get_texts()]


def test_folds_and_the_final_model_are_labelled():
    metrics = RunMetrics(status="completed", task="classification", data_format="csv", method="lora", model="m",
                         device="cpu", precision="fp32", eval_metric="accuracy",
                         folds=[result("fold-0"), result("fold-1")], main=result("final"))
    assert legend(metrics) == ["fold-0: train loss", "fold-1: train loss", "final model (all data): train loss",
                               "final model (all data): validation loss"]


def test_a_single_model_names_the_kept_checkpoint():
    metrics = RunMetrics(status="completed", task="causal_lm", data_format="alpaca", method="lora", model="m",
                         device="cpu", precision="fp32", eval_metric="loss", main=result("main", best_step=2))
    assert legend(metrics) == ["model: train loss", "model: validation loss", "kept: step 2"]
