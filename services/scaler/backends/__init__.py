"""Where trainers run: local processes, EC2 instances (Kubernetes scales itself with KEDA)."""
