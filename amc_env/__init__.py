"""amc_env: the world an AMC agent acts in: models, datasets, prunable units, criteria, surgery,
cost (MACs, params, latency), rewards and the Gymnasium environment
``amc_env/ChannelPruning-v0``."""

import gymnasium

ENV_ID = "amc_env/ChannelPruning-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="amc_agent.env.env:ChannelPruningEnv")
