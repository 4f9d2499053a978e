"""Training (stable-baselines3 PPO), ONNX export and evaluation of the learned rate controller."""
