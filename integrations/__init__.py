"""Framework adapters: scikit-learn, PyTorch Lightning, Keras 3 and autolog.

transformers: ``transformers.ModeltrailCallback`` for ``Trainer``, or ``report_to=["modeltrail"]`` once imported
"""
