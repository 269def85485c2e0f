"""Exercise 06: other correct answers, and slips that each cost exactly the parts they break."""

ALTERNATIVES = {
    "named-and-inference-mode": {
        "set-trainable-answer": """
            for _, parameter in module.named_parameters(recurse=True):
                parameter.requires_grad = bool(trainable)
        """,
        "evaluate-loop-answer": """
            mode = model.training
            model.train(False)
            hits = torch.zeros((), dtype=torch.long)
            seen = 0
            with torch.inference_mode():
                for inputs, labels in loader:
                    predicted = model(inputs.to(device)).argmax(1)
                    hits += (predicted == labels.to(device)).sum().cpu()
                    seen += len(labels)
            model.train(mode)
            return float(hits.item() / seen)
        """,
        "schedule-answer": """
            sgd = torch.optim.SGD(list(model.parameters()), lr)
            head_parameters = set(map(id, head.parameters()))
            counts = []
            for epoch in range(epochs):
                frozen = epoch < frozen_epochs
                for p in model.parameters():
                    p.requires_grad_(not frozen or id(p) in head_parameters)
                counts.append(sum(p.numel() for p in model.parameters() if p.requires_grad))
                model.train(True)
                for x, y in loader:
                    sgd.zero_grad(set_to_none=True)
                    F.cross_entropy(model(x), y).backward()
                    sgd.step()
            return counts
        """,
        "param-groups-answer": """
            head_parameters = list(head.parameters())
            body = [p for p in model.parameters() if not any(p is q for q in head_parameters)]
            return torch.optim.SGD([dict(params=body, lr=lr, momentum=momentum),
                                    dict(params=head_parameters, lr=head_lr, momentum=momentum)])
        """,
    },
    "counts-and-sets": {
        "evaluate-loop-answer": """
            previous = model.training
            model.eval()
            right = total = 0
            with torch.no_grad():
                for x, y in loader:
                    y = y.to(device)
                    right += int((model(x.to(device)).argmax(dim=-1) == y).sum())
                    total += int(y.numel())
            if previous:
                model.train()
            return right / total
        """,
        "frozen-epochs-answer": """
            accuracy_by_frozen = {}
            for k in [0, 2, 5, 10]:
                torch.manual_seed(1)
                candidate = new_task_model()
                fine_tune(candidate, candidate[-1], target_loader, 10, k, 0.05)
                accuracy_by_frozen[k] = evaluate_accuracy(candidate, heldout_loader, device)
        """,
    },
}

WRONG = {
    "eval-mode-forgotten": ({"evaluate-loop"}, {"evaluate-loop-answer": """
        correct, total = 0, 0
        with torch.no_grad():
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                correct += (model(x).argmax(dim=1) == y).sum().item()
                total += y.shape[0]
        return correct / total
    """}),
    "mean-of-batch-accuracies": ({"evaluate-loop"}, {"evaluate-loop-answer": """
        was_training = model.training
        model.eval()
        accuracies = []
        with torch.no_grad():
            for x, y in loader:
                accuracies.append((model(x.to(device)).argmax(dim=1) == y.to(device)).float().mean().item())
        model.train(was_training)
        return sum(accuracies) / len(accuracies)
    """}),
    "head-frozen-too": ({"schedule", "frozen-epochs"}, {"schedule-answer": """
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        trainable_counts = []
        for epoch in range(epochs):
            set_requires_grad(model, epoch >= frozen_epochs)
            trainable_counts.append(sum(p.numel() for p in model.parameters() if p.requires_grad))
            model.train()
            for x, y in loader:
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad()
                if loss.requires_grad:
                    loss.backward()
                optimizer.step()
        return trainable_counts
    """}),
    "learning-rates-swapped": ({"param-groups"}, {"param-groups-answer": """
        head_ids = {id(p) for p in head.parameters()}
        body = [p for p in model.parameters() if id(p) not in head_ids]
        return torch.optim.SGD([{"params": body, "lr": head_lr}, {"params": list(head.parameters()), "lr": lr}],
                               lr=lr, momentum=momentum)
    """}),
}
