// Benchmark peer: the ceiling for any Bun app. Bun.serve with one topic per room, nothing else.
const port = Number(process.argv[2] ?? 0);

const server = Bun.serve<{ room: string }>({
	port,
	hostname: "127.0.0.1",
	fetch(req, srv) {
		const room = new URL(req.url).searchParams.get("room") ?? "bench";
		if (srv.upgrade(req, { data: { room } })) return;
		return new Response("websocket only", { status: 400 });
	},
	websocket: {
		open(ws) {
			ws.subscribe(ws.data.room);
		},
		message(ws, message) {
			server.publish(ws.data.room, message);
		},
	},
});
console.log(JSON.stringify({ event: "listening", port: server.port }));
