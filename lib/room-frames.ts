// The protocol 1.2 room frames of one connection (--auth accounts): each turned into a lib/rooms.ts
// call and answered; refusals are thrown as RoomRefusal and answered as `error` by lib/session.ts.
import type { Message, ServerFrame, ServerFrameOf } from "../protocol.ts";
import type { Reader } from "./access.ts";
import type { Account } from "./accounts.ts";
import { accountOf } from "./auth-ws.ts";
import type { Rooms } from "./rooms.ts";
import type { RoomFrame, SessionRooms, Socket } from "./session.ts";

export class RoomFrames implements SessionRooms {
	constructor(private readonly rooms: Rooms) {}

	async handle(ws: Socket, frame: RoomFrame): Promise<void> {
		const { rooms } = this;
		const ref = "ref" in frame && frame.ref !== undefined ? { ref: frame.ref } : {};
		const answer = (room: ServerFrameOf<"room">["room"]) => this.send(ws, { type: "room", ...ref, room });
		switch (frame.type) {
			case "create":
				return answer(await rooms.create(ws, frame.room, frame.kind, frame.title, frame.topic));
			case "direct":
				return answer(await rooms.direct(ws, frame.names));
			case "directory": {
				const found = await rooms.directory(frame.query);
				return this.send(ws, { type: "directory", ...ref, rooms: found });
			}
			case "room_update":
				return answer(
					await rooms.update(ws, frame.room, {
						title: frame.title,
						topic: frame.topic,
						archived: frame.archived,
					}),
				);
			case "member_add":
				return answer(await rooms.addMember(ws, frame.room, frame.name));
			case "member_remove": {
				const info = await rooms.removeMember(ws, frame.room, frame.name);
				// Removing oneself is leaving: `room_gone` already told every device.
				if (info) answer(info);
				return;
			}
			case "read":
				return rooms.read(ws, frame.room, frame.seq, frame.ref);
			default:
				frame satisfies never;
		}
	}

	async join(
		ws: Socket,
		room: string,
		run: (extra: Pick<ServerFrameOf<"joined">, "info" | "people">) => Promise<void>,
	): Promise<void> {
		const extra = await this.rooms.admit(ws, room);
		await run(extra);
		this.rooms.afterJoin(ws, room);
	}

	leave(ws: Socket, room: string): Promise<void> {
		return this.rooms.leave(ws, room);
	}

	readOnly(room: string): boolean {
		return this.rooms.readOnly(room);
	}

	reader(ws: Socket): Reader {
		return {
			name: ws.data.name as string,
			account: accountOf(ws.data) as Account,
			memberOf: this.rooms.memberOf(ws),
		};
	}

	sent(message: Message): Promise<void> {
		return this.rooms.mentions(message);
	}

	welcome(ws: Socket): Promise<void> {
		return this.rooms.welcome(ws);
	}

	private send(ws: Socket, frame: ServerFrame): void {
		this.rooms.sendTo(ws, frame);
	}
}
