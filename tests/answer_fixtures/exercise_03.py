"""Exercise 03: other correct answers, and slips that each cost exactly the parts they break."""

ALTERNATIVES = {
    "bernoulli-and-apply": {
        "dropout-forward-answer": """
            if p >= 1:
                return torch.zeros_like(x)
            return x * torch.bernoulli(torch.full_like(x, 1 - p)) / (1 - p)
        """,
        "dropout-module-answer": """
            def __init__(self, p=0.5):
                super().__init__()
                self.p = p

            def forward(self, x):
                if not self.training:
                    return x
                return inverted_dropout(x, self.p)
        """,
        "dropout-check-answer": """
            checks = []
            base = torch.linspace(-3.0, 3.0, 200_001, dtype=torch.float64)
            base = base[base != 0]
            for p in (0.1, 0.4, 0.7):
                first, second = candidate(base, p, training=True), candidate(base, p, training=True)
                dropped = first == 0
                checks.append(abs(dropped.double().mean().item() - p) <= 0.01)
                checks.append(bool((~dropped).any()) and bool(((first[~dropped] - base[~dropped] / (1 - p)).abs() < 1e-9).all()))
                checks.append(not torch.equal(dropped, second == 0))
                checks.append(bool(torch.equal(candidate(base, p, training=False), base)))
            return all(checks)
        """,
        "dropout-variance-answer": """
            n = x.shape[0]
            keep = 1 - p
            mean = torch.stack([sum(W[j, i] * x[i] for i in range(n)) for j in range(W.shape[0])])
            terms = (W * x) ** 2  # (k, n): the squared contribution of each input to each output
            variance = terms.sum(dim=1) * (1 / keep - 1)
            return mean, variance
        """,
        "mc-dropout-answer": """
            saved = [(m, m.training) for m in model.modules()]
            model.train(False)
            model.apply(lambda m: m.train(True) if isinstance(m, torch.nn.Dropout) else None)
            outputs = []
            with torch.no_grad():
                for _ in range(samples):
                    outputs.append(torch.softmax(model(x), dim=1))
            for m, mode in saved:
                m.training = mode
            stacked = torch.stack(outputs)
            mean = stacked.mean(0)
            return mean, ((stacked - mean) ** 2).mean(0).sqrt()
        """,
        "overfitting-prediction-answer": """
            predicted_smaller_gap = 0.0  # a wrong guess is not graded automatically
            predicted_higher_last_epoch_loss = 0.5
        """,
        "overfitting-answer": """
            loss_gap, heldout_accuracy, last_epoch_loss = {}, {}, {}
            for p in [0.5, 0.0]:
                train_loss, heldout_loss, accuracy, last = overfit(p)
                loss_gap[p] = heldout_loss - train_loss
                heldout_accuracy[p] = accuracy
                last_epoch_loss[p] = last
        """,
    },
    "uniform-below-keep": {
        "dropout-forward-answer": """
            mask = (torch.rand(x.shape, device=x.device, dtype=x.dtype) < 1 - p).to(x.dtype)
            return x * mask * (0.0 if p == 1 else 1 / (1 - p))
        """,
        "dropout-module-answer": """
            def __init__(self, p):
                super().__init__()
                self.p = float(p)

            def forward(self, x):
                return inverted_dropout(x, self.p) if self.training else x
        """,
        "dropout-check-answer": """
            torch.manual_seed(123)
            x = torch.randn(300, 400).abs() + 0.1
            for p in (0.25, 0.6, 0.9):
                a = candidate(x, p, True)
                b = candidate(x, p, True)
                if a.shape != x.shape or abs((a == 0).float().mean().item() - p) > 0.01:
                    return False
                kept = a != 0
                if not torch.allclose(a[kept], x[kept] / (1 - p), rtol=1e-5):
                    return False
                if ((a == 0) == (b == 0)).all():
                    return False
                out = candidate(x, p, False)
                if out.shape != x.shape or not torch.equal(out, x):
                    return False
            return True
        """,
        "dropout-variance-answer": """
            products = W * x.unsqueeze(0)
            mean = products.sum(dim=1)
            variance = (products.pow(2) * p / (1 - p)).sum(dim=1) if p > 0 else torch.zeros_like(mean)
            return mean, variance
        """,
        "mc-dropout-answer": """
            before = [m.training for m in model.modules()]
            for m in model.modules():
                m.train(isinstance(m, torch.nn.Dropout))
            with torch.no_grad():
                runs = torch.stack([model(x).softmax(dim=1) for _ in range(samples)])
            for m, mode in zip(model.modules(), before):
                m.train(mode)
            return runs.mean(0), runs.std(0, correction=0)
        """,
    },
}

# A correct constructor, shared by the wrong modules below (each differs only in its forward).
MODULE_INIT = """
        def __init__(self, p):
            super().__init__()
            self.p = p
"""

WRONG = {
    "not-rescaled": ({"dropout-forward"}, {"dropout-forward-answer": """
        return x * (torch.rand_like(x) >= p).to(x.dtype)
    """}),
    "nan-at-p-one": ({"dropout-forward"}, {"dropout-forward-answer": """
        keep = (torch.rand_like(x) >= p).to(x.dtype)
        return x * keep / (1.0 - p)
    """}),
    "module-ignores-eval": ({"dropout-module"}, {"dropout-module-answer": MODULE_INIT + """
        def forward(self, x):
            return inverted_dropout(x, self.p)
    """}),
    "module-never-drops": ({"dropout-module"}, {"dropout-module-answer": MODULE_INIT + """
        def forward(self, x):
            return x
    """}),
    "check-skips-kept-values": ({"dropout-check"}, {"dropout-check-answer": """
        x = torch.rand(100_000) + 0.5
        for p in (0.2, 0.5, 0.8):
            y = candidate(x, p, True)
            if abs((y == 0).float().mean().item() - p) > 0.01:
                return False
            if torch.equal(y == 0, candidate(x, p, True) == 0):
                return False
            if not torch.equal(candidate(x, p, False), x):
                return False
        return True
    """}),
    "variance-of-the-mask-alone": ({"dropout-variance"}, {"dropout-variance-answer": """
        mean = W @ x
        variance = p * (1 - p) * (W**2 @ x**2)
        return mean, variance
    """}),
    "batch-norm-in-train-mode": ({"mc-dropout"}, {"mc-dropout-answer": """
        modes = {module: module.training for module in model.modules()}
        model.train()
        with torch.no_grad():
            probabilities = torch.stack([model(x).softmax(dim=1) for _ in range(samples)])
        for module, training in modes.items():
            module.train(training)
        return probabilities.mean(dim=0), probabilities.std(dim=0, unbiased=False)
    """}),
    "unbiased-std": ({"mc-dropout"}, {"mc-dropout-answer": """
        modes = {module: module.training for module in model.modules()}
        model.eval()
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.train()
        with torch.no_grad():
            probabilities = torch.stack([model(x).softmax(dim=1) for _ in range(samples)])
        for module, training in modes.items():
            module.train(training)
        return probabilities.mean(dim=0), probabilities.std(dim=0)
    """}),
    "modes-not-restored": ({"mc-dropout"}, {"mc-dropout-answer": """
        model.eval()
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.train()
        with torch.no_grad():
            probabilities = torch.stack([model(x).softmax(dim=1) for _ in range(samples)])
        return probabilities.mean(dim=0), probabilities.std(dim=0, unbiased=False)
    """}),
    "one-pass-too-many": ({"mc-dropout"}, {"mc-dropout-answer": """
        modes = {module: module.training for module in model.modules()}
        model.eval()
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.train()
        with torch.no_grad():
            probabilities = torch.zeros(samples, *model(x).shape)  # one pass to learn the output's shape
            for k in range(samples):
                probabilities[k] = model(x).softmax(dim=1)
        for module, training in modes.items():
            module.train(training)
        return probabilities.mean(dim=0), probabilities.std(dim=0, unbiased=False)
    """}),
    "gap-reversed": ({"overfitting"}, {"overfitting-answer": """
        runs = {p: overfit(p) for p in (0.0, 0.5)}
        loss_gap = {p: train_loss - heldout_loss for p, (train_loss, heldout_loss, _, _) in runs.items()}
        heldout_accuracy = {p: accuracy for p, (_, _, accuracy, _) in runs.items()}
        last_epoch_loss = {p: last for p, (_, _, _, last) in runs.items()}
    """}),
}
