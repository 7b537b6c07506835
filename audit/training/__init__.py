"""The passage classifier's training side: fitting (`fit`), measuring (`evaluate`), the labelled examples both read
(`examples`) and the third-party text behind label records (`realdata`); plus the tools that draw, find and write
label records and refresh the model card, each run as ``python -m audit.training.<name>`` (`draw_sample`,
`find_candidates`, `training_set`, `model_card`)."""
