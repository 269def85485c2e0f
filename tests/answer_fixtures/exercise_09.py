"""Exercise 09: other correct answers, and slips that each cost exactly the parts they break."""

ALTERNATIVES = {
    "named-modules-and-formulas": {
        "record-answer": """
            wanted = set(names)
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
        "guided-check-answer": """
            x = torch.tensor([[-2.0, -2.0, 3.0, 3.0, 0.5]])
            grad = torch.tensor([[1.5, -1.0, 2.0, -4.0, 0.25]])
            x_given, grad_given = x.clone(), grad.clone()
            out = rule(x_given, grad_given)
            if not (torch.equal(x_given, x) and torch.equal(grad_given, grad)):
                return False
            return torch.equal(out, torch.tensor([[0.0, 0.0, 2.0, 0.0, 0.25]]))
        """,
        "overlap-answer": (
            """
            return [kernel // stride + (1 if r < kernel % stride else 0) for r in range(stride)]
            """,
            """
            counts = interior_overlap(kernel, stride)
            two_d = [a * b for a in counts for b in counts]
            return max(two_d) / min(two_d)
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
        "decay-sweep-answer": """
            u = w / w.abs().mean()
            gain = float((w * u).sum())
            start = float((w * x0).sum())
            q = 1.0 - decay
            geometric = steps if decay == 0 else q * (1 - q ** steps) / (1 - q)
            return b + q ** steps * start + lr * gain * geometric
        """,
        "grad-cam-answer": (
            """
            n, k, h, w = activations.shape
            cam = torch.einsum("nk,nkij->nij", weight[target], activations).unsqueeze(1)
            return torch.relu(cam) / (h * w)
            """,
            """
            return 1.0 / h / w
            """,
        ),
    },
    "loops-and-lists": {
        "record-answer": """
            recorded, handles = {}, []
            try:
                for name in names:
                    module = model.get_submodule(name)
                    handles.append(module.register_forward_hook(
                        lambda m, i, o, key=name: recorded.update({key: torch.clone(o).detach()})))
                model(x)
            finally:
                for handle in handles:
                    handle.remove()
            return recorded
        """,
        "guided-check-answer": """
            x = torch.linspace(-3, 3, 12).repeat(12, 1)
            grad = x.t().clone()
            x_given, grad_given = x.clone(), grad.clone()
            out = rule(x_given, grad_given)
            unchanged = torch.equal(x_given, x) and torch.equal(grad_given, grad)
            negative_input_blocked = bool((out[x < 0] == 0).all())
            negative_signal_blocked = bool((out[grad < 0] == 0).all())
            both_positive = (x > 0) & (grad > 0)
            passes = torch.equal(out[both_positive], grad[both_positive])
            return unchanged and negative_input_blocked and negative_signal_blocked and passes
        """,
        "overlap-answer": (
            """
            size = 2 * kernel + 4
            counts = [0] * ((size - 1) * stride + kernel)
            for i in range(size):
                for t in range(kernel):
                    counts[i * stride + t] += 1
            middle = stride * kernel
            return [counts[middle + r] for r in range(stride)]
            """,
            """
            counts = interior_overlap(kernel, stride)
            high, low = max(counts), min(counts)
            return high * high / (low * low)
            """,
        ),
        "decay-sweep-answer": """
            factor = 1.0 - decay
            score_of_start = (w * x0).sum().item()
            per_step = lr * (w * w).sum().item() / w.abs().mean().item()
            total = sum(factor ** t for t in range(1, steps + 1))
            return b + factor ** steps * score_of_start + per_step * total
        """,
    },
}

_RECORD = """
    modules = dict(model.named_modules())
    recorded = {{}}
    handles = [modules[name].register_forward_hook(
        lambda module, inputs, output, name=name: recorded.__setitem__(name, {copy})) for name in names]
{run}
    return recorded
"""
_TRY_FINALLY = """    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()"""

_GUIDED = """
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 4, generator=generator, dtype=torch.float64)
    grad = torch.randn(2, 3, 4, 4, generator=generator, dtype=torch.float64)
    x_before, grad_before = x.clone(), grad.clone()
    passed = rule(x, grad)
{body}
"""

_STEP = """
    {step}
    n, c, h, w = x.shape
    count = round(h * w * clip_percent / 100)
    if count > 0:
        smallest = {score}.reshape(n, h * w).argsort(dim=1)[:, :count]
        keep = torch.ones(n, h * w, dtype=x.dtype, device=x.device).scatter_(1, smallest, 0.0).reshape(n, 1, h, w)
        x = x * keep
    return x
"""

WRONG = {
    # Part 1: one slip per rule of the text
    "recorded-without-a-copy": ({"record"}, {"record-answer": _RECORD.format(
        copy="output.detach()", run=_TRY_FINALLY)}),
    "hooks-removed-only-after-success": ({"record"}, {"record-answer": _RECORD.format(
        copy="output.detach().clone()", run="""    model(x)
    for handle in handles:
        handle.remove()""")}),
    "forward-error-swallowed": ({"record"}, {"record-answer": _RECORD.format(
        copy="output.detach().clone()", run="""    try:
        model(x)
    except RuntimeError:
        pass
    finally:
        for handle in handles:
            handle.remove()""")}),
    "only-top-level-names": ({"record"}, {"record-answer": """
        wanted, recorded, handles = set(names), {}, []
        for name, module in model.named_children():
            if name in wanted:
                handles.append(module.register_forward_hook(
                    lambda m, i, o, name=name: recorded.__setitem__(name, o.detach().clone())))
        try:
            model(x)
        finally:
            for handle in handles:
                handle.remove()
        return recorded
    """}),
    # Part 2: a check that never looks where the forward input is negative, and one that raises instead of answering
    "check-ignores-the-forward-mask": ({"guided-check"}, {"guided-check-answer": _GUIDED.format(body="""
    if not (torch.equal(x, x_before) and torch.equal(grad, grad_before)):
        return False
    positive = x_before > 0
    return torch.equal(passed[positive], grad_before.clamp_min(0)[positive])""")}),
    "check-raises-instead-of-returning-false": ({"guided-check"}, {"guided-check-answer": _GUIDED.format(body="""
    assert torch.equal(x, x_before) and torch.equal(grad, grad_before), "the rule changed its inputs"
    expected = torch.where((x_before > 0) & (grad_before > 0), grad_before, torch.zeros_like(grad_before))
    assert torch.equal(passed, expected), "this is not guided backpropagation's rule"
    return True""")}),
    # Part 3: every position gets k // s taps (the remainder forgotten)
    "overlap-remainder-forgotten": ({"overlap"}, {"overlap-answer": """
        return [kernel // stride] * stride
    """}),
    # Part 3: the 2-D ratio taken as the 1-D one (a tap in 2-D is a pair of taps)
    "overlap-ratio-in-one-dimension": ({"overlap"}, {"overlap-answer": (
        """
        return [(kernel - r + stride - 1) // stride if r < kernel else 0 for r in range(stride)]
        """,
        """
        counts = interior_overlap(kernel, stride)
        return max(counts) / min(counts)
        """,
    )}),
    # Part 4: a formula slip, and the in-place slip
    "clipped-on-the-first-channel": ({"ascent-step"}, {"ascent-step-answer": _STEP.format(
        step="x = (x + lr * grad / grad.abs().mean()) * (1 - decay)", score="x[:, 0].abs()")}),
    "step-modifies-x-in-place": ({"ascent-step"}, {"ascent-step-answer": _STEP.format(
        step="x += lr * grad / grad.abs().mean()\n    x *= 1 - decay", score="x.norm(dim=1)")}),
    # Part 5: the decay applied before the step's push instead of after it
    # Part 6: the gradients summed over the map instead of averaged (the CAM itself, rectified: hw times too large)
    "grad-cam-summed-not-averaged": ({"grad-cam"}, {"grad-cam-answer": (
        """
        alpha = weight[target]
        return (alpha[:, :, None, None] * activations).sum(dim=1, keepdim=True).clamp_min(0)
        """,
        """
        return 1
        """,
    )}),
    "decay-before-the-push": ({"decay-sweep"}, {"decay-sweep-answer": """
        push = lr * w / w.abs().mean()
        if decay == 0:
            x = x0 + steps * push
        else:
            keep = (1 - decay) ** steps
            x = keep * x0 + push * (1 - keep) / decay
        return float((w * x).sum() + b)
    """}),
}
