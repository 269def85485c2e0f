"""Exercise 07: other correct answers, and slips that each cost exactly the parts they break."""

ALTERNATIVES = {
    "where-and-vectors": {
        "delta-check-answer": """
            verdicts = []
            for w_value in (-1.0, 0.5, 2.0):
                xs = torch.arange(-5.0, 5.01, 0.5, dtype=torch.float64) + w_value
                w = torch.tensor(w_value, dtype=torch.float64)
                want = (1 - torch.exp(xs - w)).clamp(min=0)
                verdicts.append(bool((delta(xs, w) - want).abs().max() <= 1e-10))
            w = torch.zeros((), requires_grad=True)
            far = delta(torch.full((3,), 200.0), w)
            grads = torch.autograd.grad(far.sum(), w, allow_unused=True) if far.requires_grad else (None,)
            verdicts.append(bool((far == 0).all()) and (grads[0] is None or grads[0].item() == 0.0))
            w = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
            kink = delta(torch.tensor(2.5, dtype=torch.float64), w)
            grads = torch.autograd.grad(kink.sum(), w, allow_unused=True) if kink.requires_grad else (None,)
            verdicts.append(grads[0] is None or grads[0].item() == 0.0)
            w = torch.tensor([3e-8, 1e-7])
            close = delta(torch.zeros(2), w)
            verdicts.append(close.dtype == torch.float32 and bool(((close.double() - w.double()).abs() < 1e-12).all()))
            return all(verdicts)
        """,
        "forward-answer": """
            g = x
            for index in range(max(0, int(math.ceil(float(w))))):
                gate = -torch.expm1(-torch.relu(w - index))
                g = h(g + gate * sublayers[index](g))
            return h(g)
        """,
        "depth-backward-answer": """
            # forward mode: carry the tangent dg_i/dw along the recursion
            g, tangent = x, torch.zeros_like(x)
            for i in range(max(0, int(math.ceil(float(w))))):
                layer = sublayers[i]
                gate = 1 - math.exp(i - float(w))
                a = g + gate * layer(g)
                da = tangent + math.exp(i - float(w)) * layer(g) + gate * (tangent @ layer.weight.T)
                g, tangent = torch.relu(a), torch.where(a > 0, da, torch.zeros_like(da))
            return float((grad_output * torch.where(g > 0, tangent, torch.zeros_like(tangent))).sum())
        """,
        "regularizer-answer": """
            indices = torch.arange(len(gammas), dtype=w.dtype)
            gates = -torch.expm1(-torch.relu((w - indices) - eps))
            squares = torch.stack([(gamma ** 2).sum() for gamma in gammas]) if gammas else torch.zeros(0, dtype=w.dtype)
            return lambda_w * w * w + lambda_f * (gates * squares).sum()
        """,
        "growth-answer": """
            added = []
            while len(sublayers) < max(0, math.ceil(float(w))):
                module = make_sublayer(len(sublayers)).to(w)
                sublayers.append(module)
                added.extend(module.parameters())
            if added:
                index = next(i for i, group in enumerate(optimizer.param_groups)
                             if any(parameter is w for parameter in group["params"]))
                group = dict(optimizer.param_groups[index])
                group["params"] = added
                optimizer.add_param_group(group)
            return added
        """,
        "depth-gradient-prediction": """
            predicted_terms = [sum(1 for i in range(10) if i < w_value) for w_value in ws]
        """,
    },
    "negated-expm1": {
        "depth-backward-answer": """
            steps = []
            g = x
            for i in range(max(0, math.ceil(w.item()))):
                f = sublayers[i](g)
                a = g + delta_w(torch.tensor(float(i), dtype=w.dtype), w) * f
                steps.append((i, f, (a > 0).to(x.dtype)))
                g = a.clamp(min=0)
            upstream = grad_output * (g > 0).to(x.dtype)
            total = 0.0
            for i, f, mask in steps[::-1]:
                upstream = upstream * mask
                total += float(torch.exp(i - w) * torch.sum(upstream * f))
                upstream = upstream + torch.nn.functional.linear(upstream, sublayers[i].weight.T) * (1 - torch.exp(i - w))
            return total
        """,
        "depth-gradient-prediction": """
            predicted_terms = []
            for w_value in ws:
                predicted_terms.append(0 if w_value <= 0 else int(-(-w_value // 1)))
        """,
        "depth-gradient-answer": """
            gradients = [float(g) if g is not None else 0.0 for g in map(depth_gradient, ws)]
        """,
    },
}

WRONG = {
    "precision-tested-in-float64": ({"delta-check"}, {"delta-check-answer": """
        x = torch.linspace(-5, 5, 41, dtype=torch.float64)
        w = torch.tensor(0.0, dtype=torch.float64)
        values_right = torch.allclose(delta(x, w), torch.relu(1 - torch.exp(x - w)), rtol=0, atol=1e-10)
        w = torch.tensor(0.0, requires_grad=True)
        far = delta(torch.tensor(200.0), w)
        no_overflow = far.item() == 0.0 and torch.autograd.grad(far, w)[0].item() == 0.0
        w = torch.tensor(1.0, requires_grad=True)
        kink_flat = torch.autograd.grad(delta(torch.tensor(1.0), w), w)[0].item() == 0.0
        w = torch.tensor(3e-8, dtype=torch.float64)
        precise = abs(delta(torch.tensor(0.0, dtype=torch.float64), w).item() - w.item()) < 1e-12
        return values_right and no_overflow and kink_flat and precise
    """}),
    "inactive-sub-layers-called": ({"forward"}, {"forward-answer": """
        g = x
        for i in range(len(sublayers)):
            g = h(g + delta_w(torch.tensor(float(i), dtype=w.dtype), w) * sublayers[i](g))
        return h(g)
    """}),
    "autograd-inside-no-grad": ({"depth-backward"}, {"depth-backward-answer": """
        w = w.detach().requires_grad_()
        output = g_infinity(x, w, sublayers)
        return torch.autograd.grad((output * grad_output).sum(), w)[0]
    """}),
    "gradient-skips-the-gated-branch": ({"depth-backward"}, {"depth-backward-answer": """
        active = max(0, math.ceil(w.item()))
        g, branches, pre_activations = x, [], []
        for i in range(active):
            branch = sublayers[i](g)
            a = g + delta_w(float(i), w) * branch
            branches.append(branch)
            pre_activations.append(a)
            g = torch.relu(a)
        grad_g = grad_output * (g > 0)
        dw = torch.zeros((), dtype=w.dtype)
        for i in reversed(range(active)):
            grad_a = grad_g * (pre_activations[i] > 0)
            dw = dw + math.exp(i - w.item()) * (grad_a * branches[i]).sum()
            grad_g = grad_a
        return dw
    """}),
    "gates-without-the-cut": ({"regularizer"}, {"regularizer-answer": """
        total = lambda_w * w ** 2
        for i, gamma in enumerate(gammas):
            total = total + lambda_f * (1 - torch.exp(i + eps - w)) * (gamma ** 2).sum()
        return total
    """}),
    "hyper-parameters-of-the-first-group": ({"growth"}, {"growth-answer": """
        new_parameters = []
        while max(0, math.ceil(w.item())) > len(sublayers):
            sublayer = make_sublayer(len(sublayers)).to(device=w.device, dtype=w.dtype)
            sublayers.append(sublayer)
            new_parameters += list(sublayer.parameters())
        if new_parameters:
            settings = optimizer.param_groups[0]
            optimizer.add_param_group({**{k: v for k, v in settings.items() if k != "params"}, "params": new_parameters})
        return new_parameters
    """}),
    "counts-the-gate-at-its-kink": ({"depth-gradient"}, {"depth-gradient-prediction": """
        predicted_terms = [max(0, math.floor(w_value) + 1) for w_value in ws]
    """}),
}
