"""Exercise 09: other correct answers, and slips that each cost exactly the parts they break."""

ALTERNATIVES = {
    "named-modules-and-formulas": {
        "record-answer": """
            wanted = set(names)
            missing = wanted - {name for name, _ in model.named_modules()}
            if missing:
                raise ValueError(f"unknown module name(s): {sorted(missing)}")
            outputs, handles = {}, []
            for name, module in model.named_modules():
                if name in wanted:
                    handles.append(module.register_forward_hook(
                        lambda m, i, o, name=name: outputs.__setitem__(name, o.clone().detach())))
            try:
                model(x)
            finally:
                while handles:
                    handles.pop().remove()
            return outputs
        """,
        "saliency-answer": """
            mode = model.training
            model.train(False)
            maps = []
            for n in range(x.shape[0]):
                image = x[n:n + 1].detach().clone().requires_grad_()
                score = model(image)[0, int(target[n])]
                maps.append(torch.autograd.grad(score, image)[0].abs().max(dim=1).values[0])
            model.train(mode)
            return torch.stack(maps)
        """,
        "overlap-answer": (
            """
            length = (size - 1) * stride + kernel
            return [sum(1 for i in range(size) if 0 <= j - i * stride < kernel) for j in range(length)]
            """,
            """
            return kernel % stride != 0
            """,
        ),
        "ascent-step-answer": """
            stepped = (x + lr * grad / grad.abs().mean()) * (1 - decay)
            n, c, h, w = stepped.shape
            count = int(round(h * w * clip_percent / 100))
            if count == 0:
                return stepped
            norms = stepped.pow(2).sum(dim=1).sqrt().flatten(1)
            smallest = norms.topk(count, dim=1, largest=False).indices
            mask = torch.ones_like(norms)
            mask.scatter_(1, smallest, 0.0)
            return stepped * mask.view(n, 1, h, w)
        """,
    },
    "loops-and-lists": {
        "decay-sweep-answer": """
            scores, norms = [], []
            for decay in decays:
                score, norm = maximize(decay)
                scores.append(score)
                norms.append(norm)
        """,
        "overlap-answer": (
            """
            counts = [0 for _ in range(stride * (size - 1) + kernel)]
            for start in range(0, stride * size, stride):
                counts[start:start + kernel] = [c + 1 for c in counts[start:start + kernel]]
            return counts
            """,
            """
            counts = overlap_counts(kernel, stride, 8)
            return min(counts[kernel:-kernel]) != max(counts[kernel:-kernel])
            """,
        ),
    },
}

WRONG = {
    "recorded-without-a-copy": ({"record"}, {"record-answer": """
        modules = dict(model.named_modules())
        for name in names:
            if name not in modules:
                raise ValueError(f"no module named {name!r}")
        recorded = {}
        handles = [modules[name].register_forward_hook(
            lambda module, inputs, output, name=name: recorded.__setitem__(name, output.detach())) for name in names]
        try:
            model(x)
        finally:
            for handle in handles:
                handle.remove()
        return recorded
    """}),
    "saliency-in-train-mode": ({"saliency"}, {"saliency-answer": """
        image = x.detach().clone().requires_grad_(True)
        scores = model(image).gather(1, target.view(-1, 1)).sum()
        gradient, = torch.autograd.grad(scores, image)
        return gradient.abs().amax(dim=1)
    """}),
    "one-tap-short": ({"overlap"}, {"overlap-answer": """
        counts = [0] * ((size - 1) * stride + kernel)
        for i in range(size):
            for tap in range(kernel - 1):
                counts[i * stride + tap] += 1
        return counts
    """}),
    "clipped-on-the-first-channel": ({"ascent-step"}, {"ascent-step-answer": """
        x = (x + lr * grad / grad.abs().mean()) * (1 - decay)
        n, c, h, w = x.shape
        count = round(h * w * clip_percent / 100)
        if count > 0:
            smallest = x[:, 0].abs().reshape(n, h * w).argsort(dim=1)[:, :count]
            keep = torch.ones(n, h * w, dtype=x.dtype, device=x.device).scatter_(1, smallest, 0.0).reshape(n, 1, h, w)
            x = x * keep
        return x
    """}),
}
