"""The scikit-learn meta-estimator half of :class:`~.sklearn.TrackedEstimator`: delegation to ``estimator_``.

Prediction methods, fitted attributes, tags and metadata routing all go to the fitted clone (to the unfitted
``estimator`` for what is known before fit), so that the wrapper behaves as the estimator it wraps.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.utils import get_tags
from sklearn.utils.metadata_routing import MetadataRouter, MethodMapping, _routing_enabled, process_routing
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

#: Methods the router maps one to one onto the wrapped estimator.
_ROUTED = (
    "fit", "partial_fit", "predict", "predict_proba", "predict_log_proba", "decision_function",
    "score", "transform", "inverse_transform", "fit_transform", "fit_predict",
)  # fmt: skip


def estimator_has(attr: str) -> Callable[[Any], bool]:
    """For ``available_if``: the fitted estimator has ``attr`` (the unfitted one before fit)."""

    def check(self: Any) -> bool:
        inner = self.__dict__.get("estimator_", self.estimator)
        getattr(inner, attr)  # raises the wrapped estimator's own AttributeError
        return True

    return check


def _routed(method: str) -> Any:
    """``method(X, **params)`` of the fitted estimator, with metadata routed to it; there when it has one."""

    def call(self: Any, X: Any, **params: Any) -> Any:
        return getattr(self._fitted(), method)(X, **self._route(method, params))

    call.__name__ = call.__qualname__ = method
    return available_if(estimator_has(method))(call)


class Delegating(BaseEstimator):
    """Everything but fitting: what the wrapped (fitted) estimator answers."""

    estimator: Any

    predict = _routed("predict")
    predict_proba = _routed("predict_proba")
    predict_log_proba = _routed("predict_log_proba")
    decision_function = _routed("decision_function")
    transform = _routed("transform")
    inverse_transform = _routed("inverse_transform")

    @available_if(estimator_has("score_samples"))
    def score_samples(self, X: Any) -> Any:
        return self._fitted().score_samples(X)

    @available_if(estimator_has("score"))
    def score(self, X: Any, y: Any = None, **params: Any) -> Any:
        return self._fitted().score(X, y, **self._route("score", params))

    @available_if(estimator_has("get_feature_names_out"))
    def get_feature_names_out(self, input_features: Any = None) -> Any:
        return self._fitted().get_feature_names_out(input_features)

    @available_if(estimator_has("set_output"))
    def set_output(self, *, transform: str | None = None) -> Delegating:
        """Configure the output container of the wrapped (and the fitted) estimator."""
        self.estimator.set_output(transform=transform)
        if "estimator_" in self.__dict__:
            self.estimator_.set_output(transform=transform)
        return self

    @property
    def classes_(self) -> Any:
        return self._fitted().classes_

    @property
    def n_features_in_(self) -> int:
        return int(self._fitted().n_features_in_)

    @property
    def feature_names_in_(self) -> Any:
        return self._fitted().feature_names_in_

    def __getattr__(self, name: str) -> Any:
        # Any other public attribute of the fitted estimator (feature_importances_, coef_,
        # best_params_, cv_results_, staged_predict, ...). Only reached when normal lookup fails.
        if not name.startswith("_"):
            fitted = self.__dict__.get("estimator_")
            if fitted is not None:
                return getattr(fitted, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        from modeltrail._config import mask_password

        return mask_password(super().__repr__(N_CHAR_MAX))  # the uri's password stays out of logs

    def __sklearn_is_fitted__(self) -> bool:
        return "estimator_" in self.__dict__

    def __sklearn_tags__(self) -> Any:
        return copy.deepcopy(get_tags(self.estimator))

    def get_metadata_routing(self) -> Any:
        mapping = MethodMapping()
        for method in _ROUTED:
            mapping.add(caller=method, callee=method)
        return MetadataRouter(owner=self).add(estimator=self.estimator, method_mapping=mapping)

    # ------------------------------------------------------------- internals
    def _fitted(self) -> Any:
        check_is_fitted(self, "estimator_")  # NotFittedError is an AttributeError: hasattr stays honest
        return self.__dict__["estimator_"]

    def _route(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if not _routing_enabled():
            return params
        return dict(process_routing(self, method, **params).estimator[method])
