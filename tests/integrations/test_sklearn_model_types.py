"""One ``model_type`` vocabulary across adapters (``modeltrail._adapter.infer_model_type``), as scikit-learn uses it."""

from __future__ import annotations

import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import make_classification
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.ensemble import IsolationForest
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

import modeltrail
from modeltrail._adapter import MODEL_TYPES, class_of, infer_model_type
from modeltrail.integrations.sklearn import TrackedEstimator


@pytest.mark.parametrize(
    ("hints", "kind"),
    [
        (("classifier",), "classifier"),
        (("outlier_detector",), "outlier-detector"),  # scikit-learn's spelling of the vocabulary's words
        (("density_estimator",), "density-estimator"),
        (("transformer",), "transformer"),
        (("VisionTransformer",), None),  # an architecture in a class name, not scikit-learn's transformer
        (("binary:logistic",), "classifier"),  # XGBoost objectives
        (("reg:squarederror",), "regressor"),
        (("rank:pairwise",), "ranker"),
        (("reg:logistic",), None),  # says two kinds: not guessed
        (("multiclass",), "classifier"),  # LightGBM objectives
        (("lambdarank",), "ranker"),
        (("l2",), "regressor"),
        (("sparse_categorical_crossentropy",), "classifier"),  # Keras / torch losses
        (("MeanSquaredError",), "regressor"),
        (("BCEWithLogitsLoss",), "classifier"),
        (("SmoothL1Loss",), "regressor"),
        (("BertForSequenceClassification",), "classifier"),  # Hugging Face architectures and tasks
        (("GPT2LMHeadModel",), "language-model"),
        (("LlamaForCausalLM",), "language-model"),
        (("T5ForConditionalGeneration",), "language-model"),
        (("DetrForObjectDetection",), "object-detector"),
        (("text-generation",), "language-model"),
        (("sigmoid", "Net", None, ""), None),  # nothing that says
        (("Net", "regression", "classification"), "regressor"),  # the first hint that says wins
    ],
)
def test_infer_model_type(hints: tuple[object, ...], kind: str | None) -> None:
    assert infer_model_type(*hints) == kind
    assert kind is None or kind in MODEL_TYPES


def test_class_of_names_the_qualified_class() -> None:
    assert class_of(SVR()) == class_of(SVR) == "sklearn.svm._classes.SVR"


@pytest.mark.parametrize(
    ("estimator", "kind"),
    [
        (IsolationForest(n_estimators=5, random_state=0), "outlier-detector"),
        (GaussianMixture(n_components=2, random_state=0), "density-estimator"),
        (LinearDiscriminantAnalysis(), "classifier"),  # a classifier that also transforms is a classifier
        (make_pipeline(StandardScaler(), SVR()), "regressor"),  # a pipeline is what its last step is
        (make_pipeline(StandardScaler()), "transformer"),
    ],
)
def test_sklearn_model_type_and_class_recorded(sqlite_url: str, estimator: object, kind: str) -> None:
    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    wrapped = TrackedEstimator(estimator, model="m", uri=sqlite_url).fit(X, y)
    tracker = modeltrail.Tracker(sqlite_url)
    assert tracker.model("m").model_type == kind
    assert tracker.get_training(wrapped.training_id_).context["model_class"] == class_of(estimator)
