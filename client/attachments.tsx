// Files in the timeline (images and videos inline at their own size, anything else a card) and the composer's uploads.
import type { FileRef } from "../protocol.ts";
import { humanSize, type Upload } from "./uploads.ts";

/** Where a file is downloaded; the id is a hex SHA-256 (protocol.ts checks it), the name only labels the download. */
export function fileUrl(f: Pick<FileRef, "id" | "name">): string {
	return `/api/files/${encodeURIComponent(f.id)}?name=${encodeURIComponent(f.name)}`;
}

/**
 * Only what the server marked `inline` and is an image or video of a type
 * browsers show safely is drawn; SVG (script) and anything else is a card.
 */
function kind(f: FileRef): "image" | "video" | "card" {
	if (f.inline !== true) return "card";
	if (/^image\/(png|jpeg|gif|webp|avif)$/.test(f.type)) return "image";
	if (/^video\/(mp4|webm)$/.test(f.type)) return "video";
	return "card";
}

export function Attachments({ files }: { files: FileRef[] }) {
	return (
		<ul class="attachments">
			{files.map((f) => {
				const url = fileUrl(f);
				const k = kind(f);
				return (
					<li key={f.id}>
						{k === "image" ? (
							<a
								href={url}
								target="_blank"
								rel="noopener noreferrer"
								title={`${f.name} (${humanSize(f.size)})`}
							>
								{/* width and height from the message: the space is kept before the image loads, so nothing jumps. */}
								<img
									class="attachment-image"
									src={url}
									alt={f.name}
									width={f.width}
									height={f.height}
									loading="lazy"
								/>
							</a>
						) : k === "video" ? (
							// biome-ignore lint/a11y/useMediaCaption: people's own videos come without captions
							<video
								class="attachment-video"
								src={url}
								controls
								preload="metadata"
								width={f.width}
								height={f.height}
								aria-label={f.name}
							/>
						) : (
							<a class="file-card" href={url} download={f.name}>
								<span class="file-icon" aria-hidden="true">
									{extension(f.name)}
								</span>
								<span class="file-name">
									<bdi>{f.name}</bdi>
								</span>
								<span class="file-meta">
									{f.type} · {humanSize(f.size)} · Download
								</span>
							</a>
						)}
					</li>
				);
			})}
		</ul>
	);
}

function extension(name: string): string {
	const m = /\.([a-z0-9]{1,4})$/i.exec(name);
	return m ? (m[1] as string).toUpperCase() : "FILE";
}

/** The composer's files: a progress bar and a cancel button each, or what went wrong. */
export function UploadList({ uploads, onCancel }: { uploads: Upload[]; onCancel(key: string): void }) {
	if (uploads.length === 0) return null;
	return (
		<ul class="uploads" aria-label="Files to send">
			{uploads.map((u) => (
				<li key={u.key} class={`upload ${u.state}`}>
					<span class="upload-name">
						<bdi>{u.name}</bdi> <span class="upload-size">{humanSize(u.size)}</span>
					</span>
					{u.state === "uploading" && (
						<progress max={u.size || 1} value={u.loaded} aria-label={`Uploading ${u.name}`} />
					)}
					{u.state === "done" && <span class="upload-state">Ready</span>}
					{u.state === "failed" && (
						<span class="upload-state error" role="alert">
							{u.error}
						</span>
					)}
					<button
						type="button"
						class="icon"
						aria-label={u.state === "uploading" ? `Cancel ${u.name}` : `Remove ${u.name}`}
						title={u.state === "uploading" ? "Cancel" : "Remove"}
						onClick={() => onCancel(u.key)}
					>
						×
					</button>
				</li>
			))}
		</ul>
	);
}
