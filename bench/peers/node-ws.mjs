// Benchmark peer: the common hand-written Node server, ws 8 broadcasting in a loop over the room's clients.
import { createServer } from "node:http";
import { WebSocketServer } from "ws";

const port = Number(process.argv[2] ?? 0);
const rooms = new Map();
const http = createServer((_, res) => res.writeHead(400).end("websocket only"));
const wss = new WebSocketServer({ server: http });

wss.on("connection", (ws, req) => {
	const room = new URL(req.url, "http://x").searchParams.get("room") ?? "bench";
	const members = rooms.get(room) ?? new Set();
	rooms.set(room, members);
	members.add(ws);
	ws.on("message", (data, isBinary) => {
		for (const client of members) if (client.readyState === 1) client.send(data, { binary: isBinary });
	});
	ws.on("close", () => members.delete(ws));
});
http.listen(port, "127.0.0.1", () =>
	console.log(JSON.stringify({ event: "listening", port: http.address().port })),
);
