"""The few global coefficients of the estimator (never one per model), each a physical quantity.

memory.py and throughput.py read these. benchmarks/estimator_accuracy.py
refits the time coefficients on the calibration rows of gpt2 and llama-3.2-3b
(benchmarks/data/measured-memory.jsonl, H100) and reports the error on the
rows it did not fit (qwen2.5-0.5b, and own harness runs when there are any).
"""

#: A layer's backward pass allocates gradient tensors for its intermediates while its saved
#: activations are still alive: this fraction of that layer's saved bytes. No calibration peak
#: falls inside a layer's backward (the loss backward or the end of backward dominates every
#: measured row), so it cannot be fitted; 0.4 is the op count: an MLP backward holds about three
#: gradients of its widest intermediate next to the adapters' fp32 gradients.
LAYER_BACKWARD_TEMPORARIES = 0.4

#: Fraction of the catalog's peak 16-bit TFLOPS a large training step reaches (MFU).
MODEL_FLOPS_UTILISATION = 0.364
#: Host time to launch one plain transformer-layer pass (forward, or half a backward), seconds.
HOST_SECONDS_PER_LAYER_PASS = 0.000971
#: Extra host work per adapted linear in a layer pass, as a fraction of a plain pass.
HOST_PER_ADAPTER = 0.208
#: Extra host work per 4-bit linear (dequantise + bitsandbytes dispatch), as a fraction of a plain pass.
HOST_PER_4BIT_LINEAR = 0.188
#: A gradient-checkpointed layer's recompute, in layer passes (the forward again plus the checkpoint machinery).
HOST_RECOMPUTE = 3.23
#: Element-wise kernels are memory-bound: each byte of saved activations and logits costs this many
#: FLOP-equivalents (an H100's peak FLOPS over its bandwidth is ~300; each byte is written, read and
#: passed through about four element-wise kernels). Set, not fitted.
FLOPS_PER_TRAFFIC_BYTE = 1200.0

#: How far real run times fall from the predicted ones: actual / predicted hours at the 10th and 90th
#: percentile of the held-out calibration rows (1 + signed tokens/s error, 20 rows,
#: benchmarks/results/estimator_accuracy.json, which the benchmark rewrites along with this band). The
#: prediction is mostly optimistic, so the band is lopsided. Printed next to every time and cost.
TIME_BAND = (0.935, 1.624)
