"""Exercise 03: other correct answers, and slips that each cost exactly the parts they break."""

ALTERNATIVES = {
    "bernoulli-and-apply": {
        "dropout-forward-answer": """
            if p < 0 or p > 1:
                raise ValueError(f"dropout probability {p} is outside [0, 1]")
            if training and p > 0:
                if p == 1:
                    return torch.zeros_like(x)
                return x * torch.bernoulli(torch.full_like(x, 1 - p)) / (1 - p)
            return x
        """,
        "dropout-module-answer": """
            def __init__(self, p=0.5):
                if not (0 <= p <= 1):
                    raise ValueError("p = " + str(p) + " is not a probability")
                super().__init__()
                self.p = p

            def forward(self, x):
                if self.training:
                    return inverted_dropout(x, self.p, True)
                return x
        """,
        "dropout-check-answer": """
            ones = torch.ones(200_000)
            checks = []
            for p in (0.1, 0.4, 0.7):
                y = candidate(ones, p, training=True)
                zeros = (y == 0).double().mean().item()
                kept = y[y != 0]
                checks.append(abs(zeros - p) <= 0.01)
                checks.append(kept.numel() > 0 and bool(((kept - 1 / (1 - p)).abs() < 1e-5).all()))
                checks.append(bool(torch.equal(candidate(ones, p, training=False), ones)))
            return all(checks)
        """,
        "mc-dropout-answer": """
            saved = [(m, m.training) for m in model.modules()]
            model.train(False)
            model.apply(lambda m: m.train(True) if type(m).__name__ in ("Dropout", "MyDropout") else None)
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
        "overfitting-answer": """
            loss_gap, heldout_accuracy, last_epoch_loss = {}, {}, {}
            for p in [0.0, 0.5]:
                train_loss, heldout_loss, accuracy, last = overfit(p)
                loss_gap[p] = heldout_loss - train_loss
                heldout_accuracy[p] = accuracy
                last_epoch_loss[p] = last
        """,
    },
    "uniform-below-keep": {
        "dropout-forward-answer": """
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"p={p} must lie in [0, 1]")
            if not training:
                return x
            mask = (torch.rand(x.shape, device=x.device, dtype=x.dtype) < 1 - p).to(x.dtype)
            return x * mask * (0.0 if p == 1 else 1 / (1 - p))
        """,
        "mc-dropout-answer": """
            before = [m.training for m in model.modules()]
            for m in model.modules():
                m.train(isinstance(m, (torch.nn.Dropout, MyDropout)))
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
        def __init__(self, p=0.5):
            super().__init__()
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"p must be in [0, 1], got {p!r}")
            self.p = p
"""

WRONG = {
    "nan-at-p-one": ({"dropout-forward"}, {"dropout-forward-answer": """
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p!r}")
        if not training or p == 0.0:
            return x
        keep = (torch.rand_like(x) >= p).to(x.dtype)
        return x * keep / (1.0 - p)
    """}),
    "module-ignores-eval": ({"dropout-module", "overfitting"}, {"dropout-module-answer": MODULE_INIT + """
        def forward(self, x):
            return inverted_dropout(x, self.p, True)
    """}),
    "module-never-drops": ({"dropout-module", "mc-dropout", "overfitting"}, {"dropout-module-answer": MODULE_INIT + """
        def forward(self, x):
            return x
    """}),
    "check-forgets-eval-mode": ({"dropout-check"}, {"dropout-check-answer": """
        ones = torch.ones(100_000)
        for p in (0.2, 0.5, 0.8):
            y = candidate(ones, p, True)
            if abs((y == 0).float().mean().item() - p) > 0.01:
                return False
            kept = y[y != 0]
            if kept.numel() == 0 or not torch.allclose(kept, torch.full_like(kept, 1 / (1 - p))):
                return False
        return True
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
}
