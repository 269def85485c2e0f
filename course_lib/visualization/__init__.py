"""Seeing what hidden layers compute (lecture 09), one idea per module:

- `capture`       recording activations safely (copied, hooks always removed), feature-map grids, top inputs
- `deconvnet`     Zeiler & Fergus' deconvnet with explicit switches, and the modified-gradient cross-check
- `attribution`   class-score maps: saliency, modified backpropagation (guided, deconvnet), occlusion, Grad-CAM
- `sanity`        Adebayo's cascading model randomization and the Spearman rank correlation of maps
- `maximize`      activation maximization with Yosinski's per-step regularizers and natural pre-image priors
- `checkerboard`  the uneven overlap of transposed convolutions, and a score for period-2 grids
- `experiments`   the lecture's digit CNN and upsampling autoencoders, imported on their own
"""

from course_lib.visualization.attribution import class_backprop, grad_cam, occlusion, saliency, target_score
from course_lib.visualization.capture import Recording, TopActivations, capture, feature_grid, top_activating
from course_lib.visualization.checkerboard import checkerboard_score, overlap_map, parity_energies
from course_lib.visualization.deconvnet import DeconvNet, leaf_modules, modified_backprop, unpool
from course_lib.visualization.maximize import (BoundedRange, ClipSmallContribution, ClipSmallNorm, GaussianBlur,
                                               Jitter, L2Decay, Maximization, Objective, Reconstruction,
                                               TotalVariation, alpha_norm, ascent_step, channel, evaluate_objective,
                                               gaussian_blur, invert, logit, maximize, neuron, total_variation)
from course_lib.visualization.sanity import (Cascade, cascading_randomization, parametrized_layers, randomize_top,
                                             rankdata, spearman)

__all__ = [
    "Recording", "TopActivations", "capture", "feature_grid", "top_activating", "checkerboard_score", "overlap_map",
    "parity_energies", "DeconvNet", "leaf_modules", "modified_backprop", "unpool", "BoundedRange",
    "ClipSmallContribution", "ClipSmallNorm", "GaussianBlur", "Jitter", "L2Decay", "Maximization", "Objective",
    "Reconstruction", "TotalVariation", "alpha_norm", "ascent_step", "channel", "evaluate_objective", "gaussian_blur",
    "invert", "logit", "maximize", "neuron", "total_variation", "class_backprop", "grad_cam", "occlusion", "saliency",
    "target_score", "Cascade", "cascading_randomization", "parametrized_layers", "randomize_top", "rankdata",
    "spearman",
]
