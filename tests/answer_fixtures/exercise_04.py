"""Exercise 04: other correct answers, and slips that each cost exactly the part they break (the outline of the
course design's section 6: a biased running variance, batch statistics in eval mode, the momentum reversed; and
for the derive and design parts, batch normalization's statistics or its gradient formula copied onto layer
normalization, groups of channels taken with a stride instead of consecutively, and a check that looks at training
mode only)."""

ALTERNATIVES = {
    "mean-of-squares-and-loops": {
        "batchnorm-answer": """
            if not training:
                return gamma * (x - running_mean) * torch.rsqrt(running_var + eps) + beta
            n = x.shape[0]
            mean = x.sum(dim=0) / n
            centered = x - mean
            var = (centered * centered).sum(dim=0) / n
            with torch.no_grad():
                running_mean.copy_(running_mean + momentum * (mean - running_mean))
                running_var.copy_(running_var + momentum * (var * (n / (n - 1)) - running_var))
            return centered * torch.rsqrt(var + eps) * gamma + beta
        """,
        "layernorm-answer": """
            @staticmethod
            def forward(ctx, x, gamma, beta, eps):
                centered = x - x.sum(dim=1, keepdim=True) / x.shape[1]
                inv_sigma = 1.0 / torch.sqrt((centered ** 2).mean(dim=1, keepdim=True) + eps)
                ctx.save_for_backward(centered, inv_sigma, gamma)
                return centered * inv_sigma * gamma + beta

            @staticmethod
            def backward(ctx, grad_y):
                centered, inv_sigma, gamma = ctx.saved_tensors
                z = centered * inv_sigma
                d = z.shape[1]
                rows = []
                for b in range(z.shape[0]):  # the Jacobian of one row, (I - 1/D - z zᵀ/D) / σ, applied to γ δ
                    jacobian = (torch.eye(d, dtype=z.dtype) - 1.0 / d - torch.outer(z[b], z[b]) / d) * inv_sigma[b]
                    rows.append(jacobian.T @ (gamma * grad_y[b]))
                return torch.stack(rows), (grad_y * z).sum(dim=0), grad_y.sum(dim=0), None
        """,
        "batchnorm-check-answer": """
            torch.manual_seed(11)
            for momentum in (0.1, 0.5):
                for training in (True, False):
                    module = torch.nn.BatchNorm1d(4, momentum=momentum).double()
                    with torch.no_grad():
                        module.weight.uniform_(0.5, 2.0)
                        module.bias.normal_()
                        module.running_mean.normal_()
                        module.running_var.uniform_(0.5, 3.0)
                    module.train(training)
                    x = torch.randn(5, 4, dtype=torch.float64) * 3 - 1
                    mean, var = module.running_mean.clone(), module.running_var.clone()
                    with torch.no_grad():
                        got = candidate(x, module.weight, module.bias, mean, var, training, momentum=momentum)
                        want = module(x)
                    if not all(torch.allclose(a, b, atol=1e-9, rtol=1e-9) for a, b in
                               [(got, want), (mean, module.running_mean), (var, module.running_var)]):
                        return False
            return True
        """,
        "group-norm-answer": ("""
            size = x.shape[1] // num_groups
            dims = tuple(range(1, x.dim()))
            pieces = []
            for g in range(num_groups):  # one slice of consecutive channels per group
                block = x[:, g * size:(g + 1) * size]
                mean = block.mean(dim=dims, keepdim=True)
                var = ((block - mean) ** 2).mean(dim=dims, keepdim=True)
                pieces.append((block - mean) * torch.rsqrt(var + eps))
            return torch.cat(pieces, dim=1)
        """, """
            G_LAYER_NORM, G_INSTANCE_NORM = 1, 2 * 3
        """),
        "step-sizes-prediction-answer": """
            predicted_largest_eta_plain = 1.0
            predicted_largest_eta_bn = 10.0
        """,
        "step-sizes-answer": """
            largest_eta_plain = largest_eta_bn = None
            for eta in etas:
                if train_mlp(False, eta) >= 0.5:
                    largest_eta_plain = eta
                if train_mlp(True, eta) >= 0.5:
                    largest_eta_bn = eta
        """,
    },
    "var-mean-and-means": {
        "batchnorm-answer": """
            if training:
                var, mean = torch.var_mean(x, dim=0, correction=0)
                n = x.shape[0]
                running_mean.data.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                running_var.data.mul_(1 - momentum).add_(var.detach() * n / (n - 1), alpha=momentum)
            else:
                mean, var = running_mean, running_var
            return (x - mean) / (var + eps).sqrt() * gamma + beta
        """,
        "layernorm-answer": """
            @staticmethod
            def forward(ctx, x, gamma, beta, eps):
                var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
                rstd = torch.rsqrt(var + eps)
                ctx.save_for_backward(x, mean, rstd, gamma)
                return (x - mean) * rstd * gamma + beta

            @staticmethod
            def backward(ctx, grad_y):
                x, mean, rstd, gamma = ctx.saved_tensors
                z = (x - mean) * rstd
                g = grad_y * gamma
                grad_x = rstd * (g - g.mean(dim=-1, keepdim=True) - z * (g * z).mean(dim=-1, keepdim=True))
                return grad_x, torch.einsum("bd,bd->d", grad_y, z), grad_y.sum(0), None
        """,
        "batchnorm-check-answer": """
            x = torch.linspace(-2.0, 3.0, 12, dtype=torch.float64).reshape(4, 3) ** 2
            gamma = torch.tensor([1.5, 0.5, 2.0], dtype=torch.float64)
            beta = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
            ok = True
            for training in (False, True):
                stats = [torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64), torch.tensor([2.0, 0.7, 1.3], dtype=torch.float64)]
                expected = [s.clone() for s in stats]
                y = candidate(x, gamma, beta, *stats, training, 0.25, 1e-5)
                y_ref = torch.nn.functional.batch_norm(x, *expected, gamma, beta, training=training, momentum=0.25, eps=1e-5)
                ok = ok and bool((y - y_ref).abs().max() < 1e-7)
                ok = ok and all(bool((s - e).abs().max() < 1e-7) for s, e in zip(stats, expected))
            return ok
        """,
    },
}

WRONG = {
    "unbiased-variance-in-the-output": ({"forward"}, {"batchnorm-answer": """
        if training:
            mean = x.mean(dim=0)
            var = x.var(dim=0)
            with torch.no_grad():
                running_mean.mul_(1 - momentum).add_(momentum * mean)
                running_var.mul_(1 - momentum).add_(momentum * var)
        else:
            mean, var = running_mean, running_var
        return gamma * (x - mean) / torch.sqrt(var + eps) + beta
    """}),
    "no-epsilon-in-training": ({"forward"}, {"batchnorm-answer": """
        if not training:
            return gamma * (x - running_mean) / torch.sqrt(running_var + eps) + beta
        mean = x.mean(dim=0)
        var = x.var(dim=0, unbiased=False)
        with torch.no_grad():
            n = x.shape[0]
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * n / (n - 1))
        return gamma * (x - mean) / torch.sqrt(var) + beta
    """}),
    "biased-running-variance": ({"running-stats"}, {"batchnorm-answer": """
        if training:
            mean = x.mean(dim=0)
            var = x.var(dim=0, unbiased=False)
            with torch.no_grad():
                running_mean.mul_(1 - momentum).add_(momentum * mean)
                running_var.mul_(1 - momentum).add_(momentum * var)
        else:
            mean, var = running_mean, running_var
        return gamma * (x - mean) / torch.sqrt(var + eps) + beta
    """}),
    "momentum-the-other-way-round": ({"running-stats"}, {"batchnorm-answer": """
        if training:
            mean = x.mean(dim=0)
            var = x.var(dim=0, unbiased=False)
            with torch.no_grad():
                n = x.shape[0]
                running_mean.mul_(momentum).add_((1 - momentum) * mean)
                running_var.mul_(momentum).add_((1 - momentum) * var * n / (n - 1))
        else:
            mean, var = running_mean, running_var
        return gamma * (x - mean) / torch.sqrt(var + eps) + beta
    """}),
    "running-statistics-rebound-not-updated-in-place": ({"running-stats"}, {"batchnorm-answer": """
        if training:
            mean = x.mean(dim=0)
            var = x.var(dim=0, unbiased=False)
            n = x.shape[0]
            running_mean = (1 - momentum) * running_mean + momentum * mean.detach()
            running_var = (1 - momentum) * running_var + momentum * var.detach() * n / (n - 1)
        else:
            mean, var = running_mean, running_var
        return gamma * (x - mean) / torch.sqrt(var + eps) + beta
    """}),
    "running-statistics-carry-gradients": ({"running-stats"}, {"batchnorm-answer": """
        if training:
            mean = x.mean(dim=0)
            var = x.var(dim=0, unbiased=False)
            n = x.shape[0]
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * n / (n - 1))
        else:
            mean, var = running_mean, running_var
        return gamma * (x - mean) / torch.sqrt(var + eps) + beta
    """}),
    "batch-statistics-in-eval-mode": ({"forward"}, {"batchnorm-answer": """
        mean = x.mean(dim=0)
        var = x.var(dim=0, unbiased=False)
        if training:
            with torch.no_grad():
                n = x.shape[0]
                running_mean.mul_(1 - momentum).add_(momentum * mean)
                running_var.mul_(1 - momentum).add_(momentum * var * n / (n - 1))
        return gamma * (x - mean) / torch.sqrt(var + eps) + beta
    """}),
    "running-statistics-updated-in-eval-mode-too": ({"forward"}, {"batchnorm-answer": """
        batch_mean, batch_var = x.mean(dim=0), x.var(dim=0, unbiased=False)
        mean, var = (batch_mean, batch_var) if training else (running_mean.clone(), running_var.clone())
        with torch.no_grad():
            n = x.shape[0]
            running_mean.mul_(1 - momentum).add_(momentum * batch_mean)
            running_var.mul_(1 - momentum).add_(momentum * batch_var * n / (n - 1))
        return gamma * (x - mean) / torch.sqrt(var + eps) + beta
    """}),
    "layernorm-statistics-over-the-batch": ({"layernorm-backward"}, {"layernorm-answer": """
        @staticmethod
        def forward(ctx, x, gamma, beta, eps):
            mean = x.mean(dim=0)
            sigma = torch.sqrt(x.var(dim=0, unbiased=False) + eps)
            z = (x - mean) / sigma
            ctx.save_for_backward(z, sigma, gamma)
            return gamma * z + beta

        @staticmethod
        def backward(ctx, grad_y):
            z, sigma, gamma = ctx.saved_tensors
            n = grad_y.shape[0]
            grad_gamma = (grad_y * z).sum(dim=0)
            grad_beta = grad_y.sum(dim=0)
            grad_x = gamma / (n * sigma) * (n * grad_y - grad_beta - z * grad_gamma)
            return grad_x, grad_gamma, grad_beta, None
    """}),
    "layernorm-with-gamma-outside-the-sums": ({"layernorm-backward"}, {"layernorm-answer": """
        @staticmethod
        def forward(ctx, x, gamma, beta, eps):
            mean = x.mean(dim=1, keepdim=True)
            sigma = torch.sqrt(x.var(dim=1, unbiased=False, keepdim=True) + eps)
            z = (x - mean) / sigma
            ctx.save_for_backward(z, sigma, gamma)
            return gamma * z + beta

        @staticmethod
        def backward(ctx, grad_y):
            z, sigma, gamma = ctx.saved_tensors
            d = z.shape[1]
            grad_x = gamma / (d * sigma) * (d * grad_y - grad_y.sum(dim=1, keepdim=True)
                                            - z * (grad_y * z).sum(dim=1, keepdim=True))
            return grad_x, (grad_y * z).sum(dim=0), grad_y.sum(dim=0), None
    """}),
    "group-norm-with-strided-groups": ({"group-norm"}, {"group-norm-answer": ("""
        # channels c and c + G share a group: right for G = 1 and G = C, wrong in between
        grouped = x.reshape(x.shape[0], -1, num_groups, x[0, 0].numel())
        mean = grouped.mean(dim=(1, 3), keepdim=True)
        var = grouped.var(dim=(1, 3), unbiased=False, keepdim=True)
        return ((grouped - mean) / torch.sqrt(var + eps)).reshape(x.shape)
    """, """
        G_LAYER_NORM = 1
        G_INSTANCE_NORM = 6
    """)}),
    "check-looks-at-training-mode-only": ({"batchnorm-check"}, {"batchnorm-check-answer": """
        torch.manual_seed(0)
        x = torch.randn(6, 3, dtype=torch.float64)
        gamma, beta = torch.rand(3, dtype=torch.float64) + 0.5, torch.randn(3, dtype=torch.float64)
        mine = [torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)]
        theirs = [torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)]
        y = candidate(x, gamma, beta, *mine, True)
        reference = torch.nn.functional.batch_norm(x, *theirs, gamma, beta, training=True)
        return bool(torch.allclose(y, reference) and all(torch.allclose(a, b) for a, b in zip(mine, theirs)))
    """}),
    "step-sizes-with-the-best-accuracy": ({"step-sizes"}, {"step-sizes-answer": """
        accuracy = {(bn, eta): train_mlp(bn, eta) for bn in (False, True) for eta in etas}
        largest_eta_plain = max(etas, key=lambda eta: accuracy[(False, eta)])
        largest_eta_bn = max(etas, key=lambda eta: accuracy[(True, eta)])
    """}),
}
