// Benchmark peer: Node + socket.io 4, websocket transport only, broadcasting with io.to(room).emit.
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv[2] ?? 0);
const http = createServer();
const io = new Server(http, { transports: ["websocket"], serveClient: false, perMessageDeflate: false });

io.on("connection", (socket) => {
	const room = String(socket.handshake.query.room ?? "bench");
	socket.join(room);
	socket.on("m", (text) => io.to(room).emit("m", text));
});
http.listen(port, "127.0.0.1", () =>
	console.log(JSON.stringify({ event: "listening", port: http.address().port })),
);
