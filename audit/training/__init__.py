"""The passage classifier's training side: fitting (`fit`), measuring (`evaluate`), the labelled examples both read
(`examples`), the third-party text behind label records (`realdata`), and the tools that draw, find and write
label records and refresh the model card (each runnable as ``python -m audit.training.<name>``)."""
