"""policies: what maps a layer to a ratio: the policy artifact, heuristic policies, applying a
policy (to the same or a new model), export, fine-tune, train-from-scratch."""
