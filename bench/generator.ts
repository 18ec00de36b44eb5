// The load generator: runs one scenario against one running server and prints its figures as one JSON line.
import { readFileSync } from "node:fs";
import { type BenchClient, connect, connectMany, type Kind, parsePayload, payload } from "./clients.ts";

export interface Job {
	kind: Kind;
	port: number;
	serverPid: number;
	/** Further processes whose CPU counts as the server's (cluster runs: the other hubbub, Redis). */
	extraPids?: number[];
	scenario: "fanout" | "rooms" | "idle" | "storm" | "resume";
	clients: number;
	roomSize?: number;
	/** Offered message rates (fanout: messages/s into the room; rooms: messages/s per client). */
	rates?: number[];
	stepSeconds?: number;
	repeats?: number;
	/** hubbub under --auth accounts: client i connects with the session cookie `hubbub_session=bench-<i>`. */
	sessions?: boolean;
	/** Highest rate one hubbub connection may send (its rate limit, with margin). */
	perSender?: number;
}

export interface StepResult {
	offered: number;
	sent: number;
	expected: number;
	received: number;
	loss: number;
	deliveredPerSec: number;
	p50: number;
	p99: number;
	serverCpu: number;
	generatorCpu: number;
	errors: number;
}

/** Latencies in 0.1 ms buckets up to 60 s: percentiles without keeping millions of samples. */
class Latencies {
	private readonly buckets = new Uint32Array(600_000);
	count = 0;
	add(ms: number): void {
		const i = Math.min(this.buckets.length - 1, Math.max(0, Math.floor(ms * 10)));
		this.buckets[i] = (this.buckets[i] as number) + 1;
		this.count++;
	}
	percentile(p: number): number {
		if (this.count === 0) return Number.NaN;
		const want = Math.ceil(this.count * p);
		let seen = 0;
		for (let i = 0; i < this.buckets.length; i++) {
			seen += this.buckets[i] as number;
			if (seen >= want) return (i + 1) / 10;
		}
		return Number.NaN;
	}
}

function cpuSeconds(pid: number): number {
	const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
	return (Number(fields[11]) + Number(fields[12])) / 100;
}

function rss(pid: number): number {
	return Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)?.[1] ?? 0) * 1024;
}

const ownCpu = () => {
	const u = process.cpuUsage();
	return (u.user + u.system) / 1e6;
};

/** Waits until no frame has arrived for `quietMs` (presence storms after a mass join), at most `maxMs`. */
async function quiet(lastFrame: () => number, quietMs = 300, maxMs = 15_000): Promise<void> {
	const start = performance.now();
	while (performance.now() - lastFrame() < quietMs && performance.now() - start < maxMs) await Bun.sleep(50);
}

interface Counter {
	step: number;
	received: number;
	late: number;
	last: number;
	lastFrame: number;
	latencies: Latencies;
}

function newCounter(): Counter {
	return {
		step: -1,
		received: 0,
		late: 0,
		last: 0,
		lastFrame: performance.now(),
		latencies: new Latencies(),
	};
}

function deliverInto(c: Counter) {
	return (data: string) => {
		const now = performance.now();
		c.lastFrame = now;
		const p = parsePayload(data);
		if (!p) return;
		if (p.step !== c.step) {
			c.late++;
			return;
		}
		c.received++;
		c.last = now;
		c.latencies.add(now - p.t);
	};
}

/**
 * One offered rate for `seconds`: sends spread round-robin over `senders`,
 * each at most `perSender` a second, then waits for the deliveries to drain.
 */
async function step(
	job: Job,
	counter: Counter,
	senders: BenchClient[],
	rate: number,
	fanout: number,
	stepId: number,
	seconds: number,
): Promise<StepResult> {
	counter.step = stepId;
	counter.received = 0;
	counter.latencies = new Latencies();
	const errors0 = senders.reduce((n, c) => n + c.errors, 0);
	const pids = [job.serverPid, ...(job.extraPids ?? [])];
	const serverCpu = () => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
	const cpu0 = serverCpu();
	const gen0 = ownCpu();
	const start = performance.now();
	let sent = 0;
	while (performance.now() - start < seconds * 1000) {
		const target = Math.floor((rate * (performance.now() - start)) / 1000);
		while (sent < target) {
			(senders[sent % senders.length] as BenchClient).send(payload(stepId));
			sent++;
		}
		await Bun.sleep(2);
	}
	const expected = sent * fanout;
	const drainUntil = performance.now() + 3000;
	while (counter.received < expected && performance.now() < drainUntil) await Bun.sleep(10);
	const span = Math.max(counter.last, start + seconds * 1000) - start;
	const result: StepResult = {
		offered: rate,
		sent,
		expected,
		received: counter.received,
		loss: expected === 0 ? 0 : 1 - counter.received / expected,
		deliveredPerSec: (counter.received / span) * 1000,
		p50: counter.latencies.percentile(0.5),
		p99: counter.latencies.percentile(0.99),
		serverCpu: (serverCpu() - cpu0) / (span / 1000),
		generatorCpu: (ownCpu() - gen0) / (span / 1000),
		errors: senders.reduce((n, c) => n + c.errors, 0) - errors0,
	};
	// Let stragglers of this step arrive before the next one starts counting.
	await quiet(() => counter.lastFrame, 200, 3000);
	return result;
}

async function fanout(job: Job) {
	const counter = newCounter();
	const clients = await connectMany(job.clients, (i) =>
		connect({
			kind: job.kind,
			port: job.port,
			room: "fanout",
			name: `f${i}`,
			cookie: job.sessions ? `hubbub_session=bench-${i}` : undefined,
			onDeliver: deliverInto(counter),
		}),
	);
	await quiet(() => counter.lastFrame);
	const steps: StepResult[] = [];
	let id = 0;
	for (const rate of job.rates ?? []) {
		const senderCount = Math.min(clients.length, Math.max(1, Math.ceil(rate / (job.perSender ?? 8))));
		for (let r = 0; r < (job.repeats ?? 1); r++) {
			steps.push(
				await step(
					job,
					counter,
					clients.slice(0, senderCount),
					rate,
					clients.length,
					id++,
					job.stepSeconds ?? 2,
				),
			);
		}
	}
	for (const c of clients) c.close();
	return { steps };
}

async function rooms(job: Job) {
	const counter = newCounter();
	const size = job.roomSize ?? 10;
	const clients = await connectMany(job.clients, (i) =>
		connect({
			kind: job.kind,
			port: job.port,
			room: `r${Math.floor(i / size)}`,
			name: `m${i}`,
			onDeliver: deliverInto(counter),
		}),
	);
	await quiet(() => counter.lastFrame);
	const steps: StepResult[] = [];
	let id = 0;
	for (const perClient of job.rates ?? []) {
		for (let r = 0; r < (job.repeats ?? 1); r++) {
			steps.push(
				await step(job, counter, clients, perClient * clients.length, size, id++, job.stepSeconds ?? 2),
			);
		}
	}
	for (const c of clients) c.close();
	return { steps };
}

async function idle(job: Job) {
	const counter = newCounter();
	const before = rss(job.serverPid);
	const size = job.roomSize ?? 10;
	const clients = await connectMany(job.clients, (i) =>
		connect({
			kind: job.kind,
			port: job.port,
			room: `i${Math.floor(i / size)}`,
			name: `i${i}`,
			onDeliver: deliverInto(counter),
		}),
	);
	await quiet(() => counter.lastFrame, 500);
	await Bun.sleep(2000);
	const after = rss(job.serverPid);
	const open = clients.filter((c) => c.open).length;
	for (const c of clients) c.close();
	return {
		connections: job.clients,
		open,
		rssBefore: before,
		rssAfter: after,
		bytesPerConnection: (after - before) / job.clients,
	};
}

/** Puts `perRoom` messages into each room, each sender staying inside hubbub's burst. */
async function seed(job: Job, rooms: string[], perRoom: number): Promise<void> {
	const roomCount = rooms.length;
	const perSender = 15;
	const sendersPerRoom = Math.ceil(perRoom / perSender);
	let echoes = 0;
	const senders = await connectMany(roomCount * sendersPerRoom, (i) =>
		connect({
			kind: job.kind,
			port: job.port,
			room: rooms[i % roomCount] as string,
			name: `seed${i}`,
			onDeliver: () => {
				echoes++;
			},
		}),
	);
	senders.forEach((s, i) => {
		const share = Math.min(perSender, perRoom - Math.floor(i / roomCount) * perSender);
		for (let k = 0; k < share; k++) s.send(`seed ${k}`);
	});
	// Every seeder of a room sees every message of it.
	const expected = roomCount * perRoom * sendersPerRoom;
	const until = performance.now() + 30_000;
	while (echoes < expected && performance.now() < until) await Bun.sleep(10);
	for (const s of senders) s.close();
	await Promise.all(senders.map((s) => s.closed));
}

async function storm(job: Job) {
	const size = job.roomSize ?? 100;
	const roomCount = Math.ceil(job.clients / size);
	if (job.kind === "hubbub")
		await seed(
			job,
			Array.from({ length: roomCount }, (_, i) => `s${i}`),
			50,
		);
	const start = performance.now();
	const clients = await connectMany(
		job.clients,
		(i) =>
			connect({
				kind: job.kind,
				port: job.port,
				room: `s${i % roomCount}`,
				name: `st${i}`,
				onDeliver: () => {},
			}),
		1000,
	);
	const seconds = (performance.now() - start) / 1000;
	const history = clients.reduce((n, c) => n + c.joinedMessages, 0) / clients.length;
	for (const c of clients) c.close();
	return { clients: job.clients, seconds, historyPerJoin: history };
}

async function resume(job: Job) {
	if (job.kind !== "hubbub") return { supported: false };
	const room = "resume";
	const first = await connectMany(job.clients, (i) =>
		connect({ kind: job.kind, port: job.port, room, name: `re${i}`, onDeliver: () => {} }),
	);
	for (const c of first) c.close();
	await Promise.all(first.map((c) => c.closed));
	await seed(job, [room], 100);
	const start = performance.now();
	const back = await connectMany(
		job.clients,
		(i) => connect({ kind: job.kind, port: job.port, room, name: `re${i}`, since: 0, onDeliver: () => {} }),
		1000,
	);
	const seconds = (performance.now() - start) / 1000;
	const caughtUp = back.filter((c) => c.joinedMessages >= 100).length;
	for (const c of back) c.close();
	return { supported: true, clients: job.clients, seconds, caughtUp };
}

const job = JSON.parse(process.argv[2] ?? "{}") as Job;
const run = { fanout, rooms, idle, storm, resume }[job.scenario];
const result = await run(job);
console.log(JSON.stringify(result));
process.exit(0);
