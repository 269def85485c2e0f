"""Exercise 06: other correct answers, and slips that each cost exactly the parts they break."""

ALTERNATIVES = {
    "named-and-inference-mode": {
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
        "schedule-check-answer": """
            def final_state(epochs):
                model, head, loader = schedule_task()
                counts = candidate(model, head, loader, epochs, 1, 0.1)
                return [p.detach().clone() for p in model.parameters()], counts

            start = [p.detach().clone() for p in schedule_task()[0].parameters()]
            states = [start] + [final_state(epochs)[0] for epochs in (1, 2, 3)]
            for epoch in range(3):
                before, after = states[epoch], states[epoch + 1]
                if torch.equal(before[2], after[2]) and torch.equal(before[3], after[3]):
                    return False  # the head did not learn in this epoch
                features_moved = not (torch.equal(before[0], after[0]) and torch.equal(before[1], after[1]))
                if features_moved != (epoch > 0):
                    return False
            counts = final_state(3)[1]
            try:
                return [int(c) for c in counts] == [18, 53, 53]
            except TypeError:
                return False
        """,
        "param-groups-answer": """
            head_parameters = list(head.parameters())
            body = [p for p in model.parameters() if not any(p is q for q in head_parameters)]
            return torch.optim.SGD([dict(params=body, lr=lr, momentum=momentum),
                                    dict(params=head_parameters, lr=head_lr, momentum=momentum)])
        """,
    },
    "counts-and-closed-forms": {
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
        "frozen-drift-answer": """
            k = len(batch_means)
            decay = 1 - momentum
            mean = decay ** k * running_mean
            var = decay ** k * running_var
            for i, (m, v, n) in enumerate(zip(batch_means, batch_variances, batch_sizes)):
                weight = momentum * decay ** (k - 1 - i)
                mean = mean + weight * m
                var = var + weight * v * (n / (n - 1))
            return (mean, var)
        """,
        "frozen-epochs-prediction": """
            predicted_best_frozen = 10
            predicted_forever_costs = 0.0
        """,
        "frozen-epochs-answer": """
            accuracy_by_frozen = {}
            for k in [0, 2, 5, 10]:
                torch.manual_seed(1)
                candidate = new_task_model()
                reference_fine_tune(candidate, candidate[-1], target_loader, 10, k, 0.05)
                accuracy_by_frozen[k] = reference_accuracy(candidate, heldout_loader)
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
    "graph-built": ({"evaluate-loop"}, {"evaluate-loop-answer": """
        was_training = model.training
        model.eval()
        correct, total = 0, 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            correct += (model(x).argmax(dim=1) == y).sum().item()
            total += y.shape[0]
        model.train(was_training)
        return correct / total
    """}),
    "always-back-to-train-mode": ({"evaluate-loop"}, {"evaluate-loop-answer": """
        model.eval()
        correct, total = 0, 0
        with torch.no_grad():
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                correct += (model(x).argmax(dim=1) == y).sum().item()
                total += y.shape[0]
        model.train()
        return correct / total
    """}),
    "returns-a-tensor": ({"evaluate-loop"}, {"evaluate-loop-answer": """
        was_training = model.training
        model.eval()
        correct, total = 0, 0
        with torch.no_grad():
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                correct += (model(x).argmax(dim=1) == y).sum()
                total += y.shape[0]
        model.train(was_training)
        return correct / total
    """}),
    "head-frozen-too": ({"schedule"}, {"schedule-answer": """
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        trainable_counts = []
        for epoch in range(epochs):
            set_trainable(model, epoch >= frozen_epochs)
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
    "train-mode-forgotten": ({"schedule"}, {"schedule-answer": """
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        trainable_counts = []
        for epoch in range(epochs):
            set_trainable(model, epoch >= frozen_epochs)
            set_trainable(head, True)
            trainable_counts.append(sum(p.numel() for p in model.parameters() if p.requires_grad))
            for x, y in loader:
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return trainable_counts
    """}),
    "schedule-checked-on-the-final-weights": ({"schedule-check"}, {"schedule-check-answer": """
        model, head, loader = schedule_task()
        before = [p.detach().clone() for p in model.parameters()]
        counts = candidate(model, head, loader, 3, 1, 0.1)
        moved = [not torch.equal(a, p.detach()) for a, p in zip(before, model.parameters())]
        return all(moved) and list(counts) == [18, 53, 53]
    """}),
    "learning-rates-swapped": ({"param-groups"}, {"param-groups-answer": """
        head_ids = {id(p) for p in head.parameters()}
        body = [p for p in model.parameters() if id(p) not in head_ids]
        return torch.optim.SGD([{"params": body, "lr": head_lr}, {"params": list(head.parameters()), "lr": lr}],
                               lr=lr, momentum=momentum)
    """}),
    "biased-variance-averaged": ({"frozen-drift"}, {"frozen-drift-answer": """
        mean, var = running_mean.clone(), running_var.clone()
        for batch_mean, batch_variance, n in zip(batch_means, batch_variances, batch_sizes):
            mean = (1 - momentum) * mean + momentum * batch_mean
            var = (1 - momentum) * var + momentum * batch_variance
        return mean, var
    """}),
    "the-wrong-layer-as-head": ({"frozen-epochs"}, {"frozen-epochs-answer": """
        accuracy_by_frozen = {}
        for frozen_epochs in (0, 2, 5, 10):
            torch.manual_seed(1)
            model = new_task_model()
            reference_fine_tune(model, model[2], target_loader, epochs=10, frozen_epochs=frozen_epochs, lr=0.05)
            accuracy_by_frozen[frozen_epochs] = reference_accuracy(model, heldout_loader)
    """}),
}
