"""Framework adapters: scikit-learn, PyTorch Lightning, Keras 3 and autolog."""
