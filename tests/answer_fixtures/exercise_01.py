"""Exercise 01: other correct answers, and slips that each cost exactly one part."""

ALTERNATIVES = {
    "einsum-split-add": {
        "linear-backward-answer": """
            grad_x = torch.einsum("bo,oi->bi", grad_y, w)
            grad_w = torch.einsum("bo,bi->oi", grad_y, x)
            grad_b = torch.einsum("bo->o", grad_y)
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
            if type(batch_size) is not int or batch_size <= 0:
                raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
            for block in torch.randperm(len(x), generator=generator).split(batch_size):
                yield x[block.to(x.device)], y[block.to(y.device)]
        """,
        "sgd-step-answer": """
            if lr < 0:
                raise ValueError(f"negative learning rate {lr}")
            for p in parameters:
                if p.grad is not None:
                    p.data.add_(p.grad, alpha=-lr)
                    p.grad = None
        """,
        "eta-sweep-answer": """
            accuracy_by_eta = []
            for eta in etas:
                model = train_mlp(256, eta, 1)
                with torch.no_grad():
                    predicted = model(mnist.heldout_x).argmax(dim=1)
                accuracy_by_eta.append(float((predicted == mnist.heldout_y).double().mean()))
            largest_good_eta = [eta for eta, a in zip(etas, accuracy_by_eta) if a >= 0.7][-1]
        """,
    },
    "transposes-and-copies": {
        "linear-backward-answer": """
            ones = torch.ones(grad_y.shape[0], dtype=grad_y.dtype)
            return torch.mm(grad_y, w), torch.mm(x.T, grad_y).T, ones @ grad_y
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
            if not (isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size >= 1):
                raise ValueError("batch_size must be >= 1, not " + repr(batch_size))
            permutation = torch.randperm(x.shape[0], generator=generator)
            n_batches = (x.shape[0] + batch_size - 1) // batch_size
            for k in range(n_batches):
                chosen = permutation[k * batch_size:(k + 1) * batch_size]
                yield x.index_select(0, chosen), y.index_select(0, chosen)
        """,
        "sgd-step-answer": """
            if lr < 0:
                raise ValueError(f"lr={lr} < 0")
            with torch.no_grad():
                for p in [p for p in parameters if p.grad is not None]:
                    p.copy_(p - lr * p.grad)
                    p.grad = None
        """,
    },
}

WRONG = {
    "bias-gradient-averaged": ({"linear-backward"}, {"linear-backward-answer": """
        return grad_y @ w, grad_y.T @ x, grad_y.mean(dim=0)
    """}),
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
    "error-without-the-value": ({"minibatches"}, {"minibatches-answer": """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError("batch_size must be a positive int")
        order = torch.randperm(x.shape[0], generator=generator).to(x.device)
        for start in range(0, x.shape[0], batch_size):
            idx = order[start:start + batch_size]
            yield x[idx], y[idx]
    """}),
    "gradient-zeroed-not-cleared": ({"sgd-step"}, {"sgd-step-answer": """
        if lr < 0:
            raise ValueError(f"lr must be non-negative, got {lr!r}")
        with torch.no_grad():
            for p in parameters:
                if p.grad is None:
                    continue
                p -= lr * p.grad
                p.grad.zero_()
    """}),
}
