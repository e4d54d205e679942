// Worker for the RTCRtpScriptTransforms of e2ee.js: AES-128-GCM (WebCrypto) over the WHOLE
// encoded frame — nothing of the Opus payload stays in the clear (no TOC byte either); the RTP
// header and its extensions, which the SFU reads, are not part of an encoded frame.
//
// Frame on the wire: IV (12 bytes: 4 random per sender, then a 64-bit frame counter) followed by
// the ciphertext and its 16-byte tag. The receiver takes the IV from the frame, so nothing
// depends on RTP timestamps or sequence numbers (which the SFU rewrites in multiplexed slots).
// A frame that does not authenticate under the key is dropped.
const IV_BYTES = 12;
const TAG_BYTES = 16;
// refused: the first frames that did not authenticate, with their RTP metadata, for the test's
// failure message. empty: frames with no payload at all (padding-only packets, which the SFU
// forwards so that a sender's probes leave no sequence holes): nothing to decrypt, passed on.
const decryption = { decrypted: 0, failed: 0, empty: 0, refused: [] };

function hex(bytes) {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

function encrypter(key, label) {
  const iv = new Uint8Array(IV_BYTES);
  crypto.getRandomValues(iv.subarray(0, 4));
  const counter = new DataView(iv.buffer, 4, 8);
  let frames = 0n;
  return async (frame, controller) => {
    counter.setBigUint64(0, frames++);
    const sealed = new Uint8Array(
      await crypto.subtle.encrypt({ name: "AES-GCM", iv }, await key, frame.data));
    const out = new Uint8Array(IV_BYTES + sealed.byteLength);
    out.set(iv, 0);
    out.set(sealed, IV_BYTES);
    frame.data = out.buffer;
    self.postMessage({ label, sent: hex(out) }); // what the SFU is given to forward
    controller.enqueue(frame);
  };
}

function decrypter(key) {
  return async (frame, controller) => {
    const data = new Uint8Array(frame.data);
    if (data.byteLength === 0) {
      decryption.empty += 1;
      controller.enqueue(frame);
      return;
    }
    try {
      if (data.byteLength < IV_BYTES + TAG_BYTES) throw new Error("too short");
      frame.data = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: data.subarray(0, IV_BYTES) }, await key, data.subarray(IV_BYTES));
      decryption.decrypted += 1;
      controller.enqueue(frame);
    } catch (e) {
      decryption.failed += 1;
      if (decryption.refused.length < 10) {
        const { synchronizationSource, payloadType, rtpTimestamp } = frame.getMetadata();
        decryption.refused.push({ error: String(e), bytes: hex(data), synchronizationSource,
          payloadType, rtpTimestamp });
      }
    }
    if ((decryption.decrypted + decryption.failed) % 25 === 0) self.postMessage({ decryption });
  };
}

self.onrtctransform = ({ transformer }) => {
  const { op, key: raw, label } = transformer.options;
  const key = crypto.subtle.importKey("raw", raw, "AES-GCM", false, [op]);
  const transform = op === "encrypt" ? encrypter(key, label) : decrypter(key);
  transformer.readable.pipeThrough(new TransformStream({ transform })).pipeTo(transformer.writable);
};
