"""The four passage labels of the contract, in the column order of every probability matrix."""

LABELS = ("misaligned_ai", "aligned_ai", "neutral_ai", "no_ai")
AI_LABELS = LABELS[:3]
# The coarser "benign_ai" view: AI present, but not portrayed as misaligned.
BENIGN = ("aligned_ai", "neutral_ai")
