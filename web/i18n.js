// Korean first, English too. Keys are stable; codes from the API (categories, states, alert
// codes) are translated here, so the server never sends display text the view depends on.
const T = {
  ko: {
    "login.subtitle": "드론 출동 운영 화면", "login.user": "사용자", "login.password": "비밀번호",
    "login.submit": "로그인", "login.failed": "로그인 실패", logout: "로그아웃",
    "tab.ops": "운영", "tab.video": "영상 월", "tab.tester": "시험", "tab.admin": "관리",
    "queue.title": "사건 대기열", "missions.title": "진행 중 임무", "drones.title": "드론",
    dispatch: "출동", "dispatch.options": "다른 드론/템플릿…", "dispatch.title": "출동 설정 · 사건 #{id}",
    "dispatch.drone": "드론", "dispatch.template": "임무 템플릿", "dispatch.sent": "{drone} 출동 · 사건 #{id}",
    "dispatch.failed": "출동 실패", close: "종료", "close.title": "사건 #{id} 종료", "close.outcome": "처리 결과",
    "close.note": "메모", "outcome.resolved": "조치 완료", "outcome.false_alarm": "오경보",
    "outcome.handed_over": "경찰·소방 인계", "outcome.no_action": "현장 확인 후 조치 불필요", "outcome.other": "기타",
    recommended: "추천", planned: "배치 계획", "plan.waiting": "대기 (가용 드론 없음)",
    "preempt.button": "{drone} 전환 (#{from}에서)", "preempt.title": "임무 전환 확인",
    "preempt.confirm": "{drone}을(를) 사건 #{from} 임무에서 빼서 사건 #{to}에 보낼까요? 도착 예상 {eta}분.", "no.drone": "출동 가능한 드론 없음", eta: "도착 예상", min: "분", template: "템플릿",
    source: "출처", location: "위치", camera: "카메라", reports: "신고 {n}건",
    "src.operator": "운영자", "src.generator": "자동 생성", "src.webhook": "웹훅", "src.frigate": "Frigate",
    "src.cap": "CAP 경보", "src.mqtt": "MQTT",
    pause: "일시정지", resume: "재개", rtl: "복귀(RTL)", land: "착륙", abort: "중단",
    "confirm.command": "{drone}에 '{cmd}' 명령을 보낼까요?", "confirm.title": "조종사 명령 확인", send: "보내기",
    battery: "배터리", alt: "고도", speed: "속도", heading: "방위", mode: "모드", link: "링크",
    "link.ok": "정상", "link.lost": "끊김", loss: "손실", progress: "진행", waypoint: "경유점",
    reposition: "재배치", "reposition.hint": "지도를 클릭해 이동할 지점을 고르세요 (현재 고도 유지 후 정지 비행)",
    "reposition.cancel": "재배치 취소", "confirm.reposition": "{drone}을(를) {ll} 지점으로 이동시켜 정지 비행할까요?",
    "conn.open": "실시간", "conn.connecting": "연결 중", "conn.closed": "끊김",
    "conn.banner": "서버 연결이 끊겼습니다. 자동으로 다시 연결하는 중…",
    "cat.fire": "화재", "cat.traffic_accident": "교통사고", "cat.crime": "범죄", "cat.missing_person": "실종자",
    "cat.flood": "침수", "cat.environment": "환경", "cat.facility": "시설물", "cat.other": "기타",
    "st.planned": "계획", "st.uploading": "업로드", "st.launching": "이륙 중", "st.enroute": "이동 중",
    "st.on_scene": "현장 도착", "st.returning": "복귀 중", "st.completed": "완료", "st.aborted": "중단됨",
    "st.failed": "실패", "ds.ready": "대기", "ds.in_mission": "임무 중", "ds.returning": "복귀 중",
    "ds.offline": "오프라인", "ds.charging": "충전 중", "ds.docked": "도크", "ds.maintenance": "정비",
    "inc.open": "접수", "inc.dispatched": "출동", "inc.closed": "종료",
    "sev.1": "경미", "sev.2": "보통", "sev.3": "심각", "sev.4": "매우 심각",
    ago: "{t} 전", "unit.s": "초", "unit.m": "분", "unit.h": "시간", ok: "확인", cancel: "취소",
    ack: "확인", "alert.link_lost": "{drone} 통신 두절", "alert.link_recovered": "{drone} 통신 복구",
    "alert.battery_low": "{drone} 배터리 부족 ({v})", "alert.failsafe": "{drone} 비상 동작(페일세이프): {v}",
    "alert.mission_failed": "임무 #{mission} 실패", "alert.vehicle_message": "{drone} 기체 경고",
    "alert.other": "경보", "alert.count": "×{n}",
    "layer.districts": "행정구역", "layer.zones": "비행 제한 구역", "layer.docks": "드론 도크",
    "layer.cameras": "고정 카메라", "layer.incidents": "사건", "layer.drones": "드론",
    "layer.routes": "계획 경로", "layer.tracks": "비행 궤적",
    "video.none": "영상 없음", "video.unsupported": "이 서버는 아직 드론 영상을 제공하지 않습니다",
    "video.connecting": "영상 연결 중…", "video.failed": "영상 연결 실패", "video.retry": "다시 시도", "video.show": "영상 보기",
    "video.live": "실시간", "video.fixed": "고정 CCTV", "video.sensor": "센서", "video.nostream": "이 화면에서 볼 수 있는 스트림 없음",
    "video.drones": "드론 영상", "video.cameras": "고정 카메라",
    "snapshot.none": "스냅샷 없음",
    "tester.title": "시나리오 시험", "tester.na": "시나리오 실행기가 이 서버에 아직 없습니다 (GET /api/v1/scenarios 없음). 명령줄에서 `dronedispatch scenario run FILE`을 사용하세요.",
    "tester.start": "시작", "tester.reports": "지난 실행과 보고서", "tester.empty": "시나리오 없음",
    "tester.summary": "사건 {i} · 장애 {f} · 기대 {e} · {d}초", "tester.verdict": "검사 {n}건, 실패 {f}건",
    "tester.report": "보고서", "tester.output": "출력", "tester.none": "아직 실행 기록 없음", "tester.nofile": "파일 없음",
    "run.running": "실행 중", "run.passed": "통과", "run.failed": "실패", "run.error": "오류",
    "admin.users": "사용자", "admin.add": "사용자 추가", "admin.disable": "비활성화", "admin.enable": "활성화",
    "admin.disabled": "비활성", "admin.active": "활성", "admin.role": "역할", "admin.name": "이름",
    "admin.drones": "드론 정비", "admin.maint.on": "정비로 전환", "admin.maint.off": "운용 복귀",
    "role.operator": "운영자", "role.pilot": "조종사", "role.tester": "시험자", "role.admin": "관리자",
    "new.incident": "새 사건 #{id}: {cat}", error: "오류",
  },
  en: {
    "login.subtitle": "Drone dispatch operations view", "login.user": "User", "login.password": "Password",
    "login.submit": "Log in", "login.failed": "Login failed", logout: "Log out",
    "tab.ops": "Operations", "tab.video": "Video wall", "tab.tester": "Testing", "tab.admin": "Admin",
    "queue.title": "Incident queue", "missions.title": "Active missions", "drones.title": "Drones",
    dispatch: "Dispatch", "dispatch.options": "Other drone/template…", "dispatch.title": "Dispatch · incident #{id}",
    "dispatch.drone": "Drone", "dispatch.template": "Mission template", "dispatch.sent": "{drone} dispatched · incident #{id}",
    "dispatch.failed": "Dispatch failed", close: "Close", "close.title": "Close incident #{id}", "close.outcome": "Outcome",
    "close.note": "Note", "outcome.resolved": "Resolved", "outcome.false_alarm": "False alarm",
    "outcome.handed_over": "Handed to police/fire", "outcome.no_action": "Looked, no action needed", "outcome.other": "Other",
    recommended: "Recommended", planned: "Fleet plan", "plan.waiting": "Waiting (no drone free)",
    "preempt.button": "Take {drone} (from #{from})", "preempt.title": "Confirm pre-emption",
    "preempt.confirm": "Take {drone} off incident #{from} and send it to incident #{to}? ETA {eta} min.", "no.drone": "No drone available", eta: "ETA", min: "min", template: "Template",
    source: "Source", location: "Location", camera: "Camera", reports: "{n} reports",
    "src.operator": "operator", "src.generator": "generator", "src.webhook": "webhook", "src.frigate": "Frigate",
    "src.cap": "CAP alert", "src.mqtt": "MQTT",
    pause: "Pause", resume: "Resume", rtl: "Return (RTL)", land: "Land", abort: "Abort",
    "confirm.command": "Send '{cmd}' to {drone}?", "confirm.title": "Confirm pilot command", send: "Send",
    battery: "Battery", alt: "Alt", speed: "Speed", heading: "Heading", mode: "Mode", link: "Link",
    "link.ok": "OK", "link.lost": "LOST", loss: "loss", progress: "Progress", waypoint: "waypoint",
    reposition: "Reposition", "reposition.hint": "Click the map to pick the point (keeps the present altitude, then holds)",
    "reposition.cancel": "Cancel reposition", "confirm.reposition": "Fly {drone} to {ll} and hold there?",
    "conn.open": "live", "conn.connecting": "connecting", "conn.closed": "offline",
    "conn.banner": "Connection to the server lost. Reconnecting by itself…",
    "cat.fire": "Fire", "cat.traffic_accident": "Traffic accident", "cat.crime": "Crime",
    "cat.missing_person": "Missing person", "cat.flood": "Flood", "cat.environment": "Environment",
    "cat.facility": "Facility", "cat.other": "Other",
    "st.planned": "planned", "st.uploading": "uploading", "st.launching": "launching", "st.enroute": "en route",
    "st.on_scene": "on scene", "st.returning": "returning", "st.completed": "completed", "st.aborted": "aborted",
    "st.failed": "failed", "ds.ready": "ready", "ds.in_mission": "in mission", "ds.returning": "returning",
    "ds.offline": "offline", "ds.charging": "charging", "ds.docked": "docked", "ds.maintenance": "maintenance",
    "inc.open": "open", "inc.dispatched": "dispatched", "inc.closed": "closed",
    "sev.1": "minor", "sev.2": "moderate", "sev.3": "severe", "sev.4": "extreme",
    ago: "{t} ago", "unit.s": "s", "unit.m": "m", "unit.h": "h", ok: "OK", cancel: "Cancel",
    ack: "Acknowledge", "alert.link_lost": "{drone}: link lost", "alert.link_recovered": "{drone}: link recovered",
    "alert.battery_low": "{drone}: battery low ({v})", "alert.failsafe": "{drone}: failsafe action: {v}",
    "alert.mission_failed": "Mission #{mission} failed", "alert.vehicle_message": "{drone}: vehicle warning",
    "alert.other": "Alert", "alert.count": "×{n}",
    "layer.districts": "Districts", "layer.zones": "Airspace zones", "layer.docks": "Docks",
    "layer.cameras": "Fixed cameras", "layer.incidents": "Incidents", "layer.drones": "Drones",
    "layer.routes": "Planned routes", "layer.tracks": "Flown tracks",
    "video.none": "No video", "video.unsupported": "This server does not offer drone video yet",
    "video.connecting": "Connecting video…", "video.failed": "Video connection failed", "video.retry": "Retry", "video.show": "Show video",
    "video.live": "live", "video.fixed": "Fixed CCTV", "video.sensor": "Sensor", "video.nostream": "No stream viewable here",
    "video.drones": "Drone video", "video.cameras": "Fixed cameras",
    "snapshot.none": "No snapshot",
    "tester.title": "Scenario testing", "tester.na": "The scenario runner is not available on this server yet (no GET /api/v1/scenarios). Use `dronedispatch scenario run FILE` on the command line.",
    "tester.start": "Start", "tester.reports": "Past runs and reports", "tester.empty": "No scenarios",
    "tester.summary": "{i} incidents · {f} faults · {e} expectations · {d} s", "tester.verdict": "{n} checks, {f} failed",
    "tester.report": "Report", "tester.output": "Output", "tester.none": "No runs yet", "tester.nofile": "No such file",
    "run.running": "running", "run.passed": "passed", "run.failed": "failed", "run.error": "error",
    "admin.users": "Users", "admin.add": "Add user", "admin.disable": "Disable", "admin.enable": "Enable",
    "admin.disabled": "disabled", "admin.active": "active", "admin.role": "Role", "admin.name": "Name",
    "admin.drones": "Drone maintenance", "admin.maint.on": "Take out of service", "admin.maint.off": "Back in service",
    "role.operator": "operator", "role.pilot": "pilot", "role.tester": "tester", "role.admin": "admin",
    "new.incident": "New incident #{id}: {cat}", error: "Error",
  },
};

let lang = localStorage.getItem("dd.lang") || "ko";

export function t(key, vars = {}) {
  let s = (T[lang] && T[lang][key]) ?? T.en[key] ?? key;
  for (const [k, v] of Object.entries(vars)) s = s.replaceAll(`{${k}}`, v);
  return s;
}

// A translation when the key exists, else the raw code (unknown sources, new states).
export function tOr(key, fallback) {
  return (T[lang] && T[lang][key]) ?? T.en[key] ?? fallback;
}

export function getLang() { return lang; }

export function setLang(next) {
  lang = next;
  localStorage.setItem("dd.lang", next);
  document.documentElement.lang = next;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}
