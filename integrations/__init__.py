"""Framework adapters: scikit-learn, PyTorch Lightning, Keras 3 and autolog.

transformers: ``transformers.ModeltrailCallback`` for ``Trainer``, or ``report_to=["modeltrail"]`` once imported
xgboost: ``xgboost.ModeltrailCallback`` for ``xgboost.train`` (``pip install "modeltrail[xgboost]"``)
lightgbm: ``lightgbm.ModeltrailCallback`` for ``lightgbm.train`` (``pip install "modeltrail[lightgbm]"``)
optuna: ``optuna.ModeltrailCallback`` for ``study.optimize`` (``pip install "modeltrail[optuna]"``)
"""
