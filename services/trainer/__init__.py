"""The trainer: pulls training work, runs nerfstudio and the splat reducer on a GPU host."""
