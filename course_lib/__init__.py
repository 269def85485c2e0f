"""course_lib: the techniques of the Going Deeper course, written from first principles in PyTorch.

One module per idea, each readable on its own:

- `course_lib.runtime`   seeds, device, threads and the scale (quick, lecture, paper) (``setup()`` starts every notebook)
- `course_lib.data`      MNIST (download or local files), the XOR-parity task, device-resident batches
- `course_lib.training`  the ``fit`` loop with its ``History``, and ``evaluate``
- `course_lib.timing`    median wall-clock times with the device synchronized
- `course_lib.plots`     training curves and labelled curves
- `course_lib.widgets`   experiment panels: a plain function driven by sliders or by code
- `course_lib.exercises` exercise notebooks generated from solution notebooks
- `course_lib.compression` pruning, factorization, MAC counting, weight sharing (lecture 08)
- `course_lib.visualization` activation capture, the deconvnet, activation maximization, checkerboards (lecture 09)
"""

__version__ = "0.1.0"
