"""Exercise 02: other correct answers, and slips that each cost exactly the parts they break."""

ALTERNATIVES = {
    "torch-arithmetic": {
        "momentum-step-answer": """
            velocity = torch.mul(g, lr) if u is None else torch.add(torch.mul(u, gamma), g, alpha=lr)
            w.sub_(velocity)
            return velocity
        """,
        "adam-step-answer": """
            m.lerp_(g, 1 - beta1)
            v.lerp_(g * g, 1 - beta2)
            denominator = v.sqrt() / (1 - beta2 ** t) ** 0.5 + eps
            w.addcdiv_(m, denominator, value=-lr / (1 - beta1 ** t))
        """,
        "adam-check-answer": """
            w, reference = start(), start().clone().requires_grad_(True)
            m, v = torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
            optimizer = torch.optim.Adam([reference], lr=0.05)
            worst = 0.0
            for t in range(30):
                candidate(w, gradient(w), m, v, t + 1, lr=0.05, beta1=0.9, beta2=0.999, eps=1e-8)
                reference.grad = gradient(reference.detach())
                optimizer.step()
                state = optimizer.state[reference]
                worst = max(worst, (w - reference.detach()).abs().max().item(), (m - state["exp_avg"]).abs().max().item(),
                            (v - state["exp_avg_sq"]).abs().max().item())
            return bool(worst <= 1e-10)
        """,
    },
    "loops-and-lists": {
        "momentum-step-answer": """
            new_u = lr * g.clone()
            if u is not None:
                new_u = new_u + gamma * u
            with torch.no_grad():
                w.copy_(w - new_u)
            return new_u
        """,
        "adam-step-answer": """
            m.copy_(beta1 * m + (1 - beta1) * g)
            v.copy_(beta2 * v + (1 - beta2) * g ** 2)
            w.copy_(w - lr * (m / (1 - beta1 ** t)) / (torch.sqrt(v / (1 - beta2 ** t)) + eps))
        """,
        "stability-answer": """
            f = lambda point: 0.5 * (point[0].item() ** 2 + 50.0 * point[1].item() ** 2)
            w = torch.tensor([-4.0, 1.0], dtype=torch.float64)
            u, first = None, f(w)
            for _ in range(steps):
                g = torch.tensor([w[0].item(), 50.0 * w[1].item()], dtype=torch.float64)
                u = momentum_step(w, g, u, lr, gamma)
            return f(w) < first
        """,
    },
}

WRONG = {
    "gradient-modified-in-place": ({"momentum-step"}, {"momentum-step-answer": """
        g.mul_(lr)
        u = g.clone() if u is None else gamma * u + g
        w -= u
        return u
    """}),
    "adam-without-bias-correction": ({"adam-step", "valley"}, {"adam-step-answer": """
        m.mul_(beta1).add_((1 - beta1) * g)
        v.mul_(beta2).add_((1 - beta2) * g * g)
        w -= lr * m / (v.sqrt() + eps)
    """}),
    "adam-check-too-lenient": ({"adam-check"}, {"adam-check-answer": """
        w = start()
        m, v = torch.zeros_like(w), torch.zeros_like(w)
        reference = start().requires_grad_()
        optimizer = torch.optim.Adam([reference], lr=0.05)
        for t in range(1, 31):
            candidate(w, gradient(w), m, v, t, lr=0.05)
            reference.grad = gradient(reference.detach())
            optimizer.step()
        return bool(torch.allclose(w, reference.detach(), atol=1e-4))
    """}),
    "stability-without-the-curvature": ({"stability"}, {"stability-answer": """
        w = torch.tensor([-4.0, 1.0], dtype=torch.float64)
        u = None
        for _ in range(steps):
            u = momentum_step(w, w.clone(), u, lr=lr, gamma=gamma)
        return bool(0.5 * (w[0] ** 2 + 50.0 * w[1] ** 2) < 33.0)
    """}),
}
