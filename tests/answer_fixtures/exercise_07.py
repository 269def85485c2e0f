"""Exercise 07: other correct answers, and slips that each cost exactly the parts they break."""

ALTERNATIVES = {
    "where-and-vectors": {
        "delta-answer": """
            difference = x - w
            zero = torch.zeros_like(difference)
            return torch.where(difference < 0, -torch.expm1(torch.minimum(difference, zero)), zero)
        """,
        "forward-answer": """
            g = x
            for index in range(max(0, int(math.ceil(float(w))))):
                gate = delta(torch.tensor(float(index), dtype=w.dtype, device=w.device), w)
                g = h(g + gate * sublayers[index](g))
            return h(g)
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
    },
    "negated-expm1": {
        "delta-answer": """
            return torch.nn.functional.relu(w - x).neg().expm1().neg()
        """,
        "depth-gradient-answer": """
            gradients = [float(g) if g is not None else 0.0 for g in map(depth_gradient, ws)]
        """,
    },
}

WRONG = {
    "one-minus-exp-loses-precision": ({"delta"}, {"delta-answer": """
        return 1 - torch.exp(-torch.relu(w - x))
    """}),
    "minimum-splits-the-kink-gradient": ({"delta"}, {"delta-answer": """
        return -torch.expm1(torch.minimum(x - w, torch.zeros_like(x - w)))
    """}),
    "inactive-sub-layers-called": ({"forward"}, {"forward-answer": """
        g = x
        for i in range(len(sublayers)):
            g = h(g + delta(torch.tensor(float(i), dtype=w.dtype), w) * sublayers[i](g))
        return h(g)
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
}
