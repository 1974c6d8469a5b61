import net from 'node:net';

/** What the server answered to a hand-written WebSocket upgrade followed by raw bytes. */
export interface RawFramesOutcome {
  /** The status line of the handshake answer. */
  handshake: string;
  /** The code of the server's close frame, or null when none came. */
  closeCode: number | null;
}

/**
 * Upgrades a connection by hand and then writes `bytes` as they are, so frames a WebSocket library would never
 * send (unmasked, reserved bits, invalid UTF-8, absurd lengths) reach the controller.
 */
export function sendRawFrames(port: number, path: string, token: string, bytes: Buffer, timeoutMs = 10_000): Promise<RawFramesOutcome> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const key = Buffer.from('hardening-suite!').toString('base64');
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${token}\r\n\r\n`,
    );
    let received = Buffer.alloc(0);
    let sent = false;
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (!sent && received.includes('\r\n\r\n')) {
        sent = true;
        socket.write(bytes);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      const end = received.indexOf('\r\n\r\n');
      const handshake = received.subarray(0, received.indexOf('\r\n')).toString();
      resolve({ handshake, closeCode: end === -1 ? null : closeCodeOf(received.subarray(end + 4)) });
    });
  });
}

/** The code of the first close frame in a stream of server frames (unmasked). */
function closeCodeOf(data: Buffer): number | null {
  let offset = 0;
  while (offset + 2 <= data.length) {
    const opcode = data[offset]! & 0x0f;
    let length = data[offset + 1]! & 0x7f;
    let header = 2;
    if (length === 126) {
      if (offset + 4 > data.length) break;
      length = data.readUInt16BE(offset + 2);
      header = 4;
    } else if (length === 127) {
      if (offset + 10 > data.length) break;
      length = Number(data.readBigUInt64BE(offset + 2));
      header = 10;
    }
    if (opcode === 0x8) return length >= 2 ? data.readUInt16BE(offset + header) : 1005;
    offset += header + length;
  }
  return null;
}

const MASK = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);

/** A client frame as RFC 6455 wants it (masked), or broken on purpose through the options. */
export function clientFrame(opcode: number, payload: Buffer, options: { fin?: boolean; rsv?: number; masked?: boolean } = {}): Buffer {
  const { fin = true, rsv = 0, masked = true } = options;
  const first = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  const length = payload.length;
  const header = length < 126 ? Buffer.from([first, length]) : length < 65_536 ? Buffer.from([first, 126, length >> 8, length & 0xff]) : Buffer.concat([Buffer.from([first, 127]), u64(length)]);
  if (!masked) return Buffer.concat([header, payload]);
  header[1] = header[1]! | 0x80;
  return Buffer.concat([header, MASK, Buffer.from(payload.map((byte, i) => byte ^ MASK[i % 4]!))]);
}

function u64(value: number): Buffer {
  const buffer = Buffer.alloc(8);
  buffer.writeBigUInt64BE(BigInt(value));
  return buffer;
}
