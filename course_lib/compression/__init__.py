"""Making trained networks smaller and cheaper (lecture 08), one idea per module:

- `activations`    how often each unit fires on the data (frequency, APoZ, mean, max), streamed
- `pruning`        removing units for real across Linear/Conv/ConvTranspose/BatchNorm/Flatten; train/prune cycles
- `factorization`  SVD of a Linear layer and the 1×N / N×1 split of a convolution, with the Eckart–Young error
- `blocks`         1×N→N×1 and depthwise-separable convolutions with their MAC counts
- `counting`       parameters, MACs (never called FLOPs) and measured latency
- `sharing`        weight sharing with a float codebook and uint8 indices
- `quantization`   affine int8/uint8 quantization (scale, zero point, the s/2 error bound); PyTorch's int8 models
- `distillation`   Hinton's distillation loss: soft targets at a temperature T, the T² factor
- `experiments`    the lecture's models and training runs (the sum toy, the autoencoder, teacher and student),
                   imported on their own
"""

from course_lib.compression.activations import ActivationStats, UnitStats, activation_stats
from course_lib.compression.blocks import DepthwiseSeparableConv, Separable1D
from course_lib.compression.counting import (Latency, MacTable, conv_macs, conv_transpose_macs, count_macs,
                                             count_params, depthwise_separable_macs, flop_counter_macs, linear_macs,
                                             measure_latency, separable1d_macs, state_dict_bytes)
from course_lib.compression.distillation import distillation_loss, soft_targets
from course_lib.compression.factorization import (FactorizationReport, choose_rank, kernel_matrix, rebuilt_kernel,
                                                  separable_factorize_conv, svd_factorize_linear)
from course_lib.compression.pruning import (Chain, Cycle, PruneReport, batchnorm_scales, distort_weights, find_chains,
                                            l1_penalty, merge_always_active, prune_dead_units, prune_units,
                                            train_prune_cycles)
from course_lib.compression.quantization import (QuantizedWrapper, choose_qparams, clipping_range, dequantize,
                                                 quantize, quantize_dynamic, quantize_static,
                                                 quiet_quantization_warnings, rounding_error_bound, saved_bytes,
                                                 torch_dtype)
from course_lib.compression.sharing import SharedWeights, SharingReport, kmeans_1d, share_weights

__all__ = [
    "ActivationStats", "UnitStats", "activation_stats", "DepthwiseSeparableConv", "Separable1D", "Latency", "MacTable",
    "conv_macs", "conv_transpose_macs", "count_macs", "count_params", "depthwise_separable_macs", "flop_counter_macs",
    "linear_macs", "measure_latency", "separable1d_macs", "state_dict_bytes", "FactorizationReport", "choose_rank",
    "kernel_matrix", "rebuilt_kernel", "separable_factorize_conv", "svd_factorize_linear", "Chain", "Cycle",
    "PruneReport", "batchnorm_scales", "distort_weights", "find_chains", "l1_penalty", "merge_always_active",
    "prune_dead_units", "prune_units", "train_prune_cycles", "SharedWeights", "SharingReport", "kmeans_1d", "share_weights",
    "distillation_loss", "soft_targets", "QuantizedWrapper", "choose_qparams", "clipping_range", "dequantize",
    "quantize", "quantize_dynamic", "quantize_static", "quiet_quantization_warnings", "rounding_error_bound",
    "saved_bytes", "torch_dtype",
]
