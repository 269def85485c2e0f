"""Exercise 04: other correct answers, and slips that each cost exactly the parts they break (the outline of the
course design's section 6: a biased running variance, batch statistics in eval mode, the momentum reversed)."""

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
        "backward-answer": """
            @staticmethod
            def forward(ctx, x, gamma, beta, eps):
                mean = x.mean(0, keepdim=True)
                inv_sigma = 1.0 / torch.sqrt(((x - mean) ** 2).mean(0, keepdim=True) + eps)
                ctx.save_for_backward(x, gamma, mean, inv_sigma)
                return gamma * (x - mean) * inv_sigma + beta

            @staticmethod
            def backward(ctx, grad_y):
                x, gamma, mean, inv_sigma = ctx.saved_tensors
                z = (x - mean) * inv_sigma
                columns = []
                for c in range(x.shape[1]):
                    d, zc, n = grad_y[:, c], z[:, c], x.shape[0]
                    columns.append(gamma[c] * inv_sigma[0, c] / n * (n * d - d.sum() - zc * (d * zc).sum()))
                return torch.stack(columns, dim=1), (grad_y * z).sum(0), grad_y.sum(0), None
        """,
        "backward-check-answer": """
            inputs = [torch.randn(*shape, dtype=torch.float64).requires_grad_() for shape in [(4, 5), (5,), (5,)]]
            backward_verified = bool(torch.autograd.gradcheck(
                lambda *t: BatchNormFunction.apply(*t, 1e-3), tuple(inputs), eps=1e-6, atol=1e-5, raise_exception=False))
        """,
        "fold-answer": """
            scale = bn.weight.detach() / (bn.running_var + bn.eps).sqrt()
            old_bias = torch.zeros(linear.out_features, dtype=linear.weight.dtype) if linear.bias is None \\
                else linear.bias.detach()
            merged = torch.nn.Linear(linear.in_features, linear.out_features, dtype=linear.weight.dtype,
                                     device=linear.weight.device)
            with torch.no_grad():
                merged.weight.copy_(torch.diag(scale) @ linear.weight)
                merged.bias.copy_(scale * old_bias - scale * bn.running_mean + bn.bias)
            return merged
        """,
    },
    "var-mean-and-where": {
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
        "step-sizes-answer": """
            largest_eta_plain = largest_eta_bn = None
            for eta in etas:
                if train_mlp(False, eta) >= 0.5:
                    largest_eta_plain = eta
                if train_mlp(True, eta) >= 0.5:
                    largest_eta_bn = eta
        """,
    },
}

WRONG = {
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
    "batch-statistics-in-eval-mode": ({"eval-mode"}, {"batchnorm-answer": """
        mean = x.mean(dim=0)
        var = x.var(dim=0, unbiased=False)
        if training:
            with torch.no_grad():
                n = x.shape[0]
                running_mean.mul_(1 - momentum).add_(momentum * mean)
                running_var.mul_(1 - momentum).add_(momentum * var * n / (n - 1))
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
    "backward-without-the-mean-term": ({"backward"}, {"backward-answer": """
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
            grad_x = gamma / (n * sigma) * (n * grad_y - z * grad_gamma)
            return grad_x, grad_gamma, grad_y.sum(dim=0), None
    """}),
    "fold-needs-a-bias": ({"fold"}, {"fold-answer": """
        with torch.no_grad():
            s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            folded = torch.nn.Linear(linear.in_features, linear.out_features).to(linear.weight)
            folded.weight.copy_(linear.weight * s.unsqueeze(1))
            folded.bias.copy_(s * (linear.bias - bn.running_mean) + bn.bias)
        return folded
    """}),
}
