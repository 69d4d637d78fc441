"""The attention unit: streaming QK^T / AV lanes, exp2 online softmax, reciprocal, normalizer."""
