"""Exercise 01: other correct answers, and slips that each cost exactly one part."""

ALTERNATIVES = {
    "einsum-and-index-copies": {
        "weighted-backward-answer": """
            p = s / s.sum()
            residual = torch.addmm(b, x, w.T) - target
            grad_y = torch.einsum("n,no->no", 2 * p, residual)
            grad_x = torch.einsum("no,oi->ni", grad_y, w)
            grad_w = torch.einsum("no,ni->oi", grad_y, x)
            grad_b = torch.einsum("no->o", grad_y)
            return grad_x, grad_w, grad_b
        """,
        "numerical-gradient-answer": """
            grad = torch.empty_like(x)
            for index in range(x.numel()):
                step = torch.zeros_like(x).view(-1)
                step[index] = h
                step = step.view(x.shape)
                grad.view(-1)[index] = (float(f(x + step)) - float(f(x - step))) / (2 * h)
            return grad
        """,
        "minibatches-answer": """
            for block in torch.randperm(len(x), generator=generator).split(batch_size):
                yield x[block.to(x.device)], y[block.to(y.device)]
        """,
        "sgd-step-answer": """
            for p in parameters:
                if p.grad is not None:
                    p.data.mul_(1 - lr * weight_decay).add_(p.grad, alpha=-lr)
        """,
        "scaling-rule-prediction-answer": """
            predicted_eta = 0.1 * (256 // 32)
        """,
        "scaling-rule-answer": """
            accuracy_by_eta = []
            for eta in etas:
                model = train_mlp(256, eta)
                with torch.no_grad():
                    predicted = model(mnist.heldout_x).argmax(dim=1)
                accuracy_by_eta.append(float((predicted == mnist.heldout_y).double().mean()))
        """,
    },
    "sums-and-transposes": {
        "weighted-backward-answer": """
            residual = x @ w.T + b - target
            weighted = (s.reshape(-1, 1) * residual) * (2.0 / float(s.sum()))
            ones = torch.ones(x.shape[0], dtype=x.dtype)
            return torch.mm(weighted, w), torch.mm(x.T, weighted).T, ones @ weighted
        """,
        "numerical-gradient-answer": """
            values = x.detach().reshape(-1).tolist()
            estimate = []
            for i in range(len(values)):
                up, down = list(values), list(values)
                up[i] += h
                down[i] -= h
                as_tensor = lambda v: torch.tensor(v, dtype=x.dtype).reshape(x.shape)
                estimate.append((float(f(as_tensor(up))) - float(f(as_tensor(down)))) / (2 * h))
            return torch.tensor(estimate, dtype=x.dtype).reshape(x.shape)
        """,
        "minibatches-answer": """
            permutation = torch.randperm(x.shape[0], generator=generator)
            n_batches = (x.shape[0] + batch_size - 1) // batch_size
            for k in range(n_batches):
                chosen = permutation[k * batch_size:(k + 1) * batch_size]
                yield x.index_select(0, chosen), y.index_select(0, chosen)
        """,
        "sgd-step-answer": """
            with torch.no_grad():
                for p in [p for p in parameters if p.grad is not None]:
                    p.copy_(p - lr * p.grad - lr * weight_decay * p)
        """,
        "scaling-rule-prediction-answer": """
            predicted_eta = etas[4]
        """,
    },
}

WRONG = {
    # Part 1: the weighted mean normalized by the batch size instead of the sum of the weights.
    "divided-by-batch-size": ({"weighted-backward"}, {"weighted-backward-answer": """
        grad_y = 2 * s.unsqueeze(1) * (x @ w.T + b - target) / x.shape[0]
        return grad_y @ w, grad_y.T @ x, grad_y.sum(dim=0)
    """}),
    # Part 2, accuracy to 1e-6: forward differences (error about h f''/2).
    "forward-differences": ({"numerical-gradient"}, {"numerical-gradient-answer": """
        x = x.detach().clone()
        base = float(f(x))
        grad = torch.zeros_like(x)
        for i in range(x.numel()):
            saved = x.view(-1)[i].item()
            x.view(-1)[i] = saved + h
            grad.view(-1)[i] = (float(f(x)) - base) / h
            x.view(-1)[i] = saved
        return grad
    """}),
    # Part 2, x's dtype: the estimate is collected in a float32 tensor.
    "estimate-in-float32": ({"numerical-gradient"}, {"numerical-gradient-answer": """
        x = x.detach().clone()
        flat = x.view(-1)
        grad = torch.zeros(x.shape)
        for i in range(flat.numel()):
            saved = flat[i].item()
            flat[i] = saved + h
            up = float(f(x))
            flat[i] = saved - h
            down = float(f(x))
            flat[i] = saved
            grad.view(-1)[i] = (up - down) / (2 * h)
        return grad
    """}),
    # Part 2, x unchanged: moves the caller's x and moves it back by arithmetic, which leaves rounding behind.
    "x-moved-back-by-arithmetic": ({"numerical-gradient"}, {"numerical-gradient-answer": """
        flat = x.view(-1)
        grad = torch.zeros_like(x)
        for i in range(flat.numel()):
            flat[i] += h
            up = float(f(x))
            flat[i] -= 2 * h
            down = float(f(x))
            flat[i] += h
            grad.view(-1)[i] = (up - down) / (2 * h)
        return grad
    """}),
    # Part 3, the recipe: the last, smaller block is dropped.
    "last-batch-dropped": ({"minibatches"}, {"minibatches-answer": """
        order = torch.randperm(x.shape[0], generator=generator).to(x.device)
        for start in range(0, x.shape[0] - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            yield x[idx], y[idx]
        if batch_size > x.shape[0]:
            yield x[order], y[order]
    """}),
    # Part 4, the step: decay applied as p ← (1 − λ) p, without the step size.
    "decay-not-scaled-by-lr": ({"sgd-step"}, {"sgd-step-answer": """
        with torch.no_grad():
            for p in parameters:
                if p.grad is None:
                    continue
                p.mul_(1 - weight_decay)
                p.sub_(lr * p.grad)
    """}),
    # Part 4, in place: new tensors replace the list's entries; the network's parameters never change.
    "new-tensors-in-the-list": ({"sgd-step"}, {"sgd-step-answer": """
        with torch.no_grad():
            for i, p in enumerate(parameters):
                if p.grad is None:
                    continue
                parameters[i] = torch.nn.Parameter(p - lr * (p.grad + weight_decay * p))
    """}),
    # Part 4, p.grad left as it was: the penalty's gradient is added into p.grad.
    "decay-added-into-the-gradient": ({"sgd-step"}, {"sgd-step-answer": """
        with torch.no_grad():
            for p in parameters:
                if p.grad is None:
                    continue
                p.grad.add_(p, alpha=weight_decay)
                p.sub_(lr * p.grad)
    """}),
    # Part 4, a parameter without a gradient: it is decayed anyway.
    "decays-parameters-without-gradient": ({"sgd-step"}, {"sgd-step-answer": """
        with torch.no_grad():
            for p in parameters:
                p.mul_(1 - lr * weight_decay)
                if p.grad is not None:
                    p.sub_(lr * p.grad)
    """}),
    # Part 5, the prediction: the square-root rule instead of the lecture's argument.
    "square-root-scaling": ({"scaling-rule"}, {"scaling-rule-prediction-answer": """
        predicted_eta = 0.1 * (256 / 32) ** 0.5
    """}),
    # Part 5, the measurement: as many epochs as the lecture's runs instead of one.
    "sweep-over-several-epochs": ({"scaling-rule"}, {"scaling-rule-answer": """
        accuracy_by_eta = [heldout_accuracy_of(train_mlp(256, eta, S.epochs)) for eta in etas]
    """}),
}
